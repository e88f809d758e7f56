"""``synthct extractor labels`` on the real TotalSegmentator example CT and label map."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from testutils import SAMPLES

from synthct.cli.main import main

TS = SAMPLES / "totalsegmentator"


def test_labels_from_existing_total_maps(tmp_path: Path) -> None:
    (tmp_path / "ct").mkdir()
    (tmp_path / "seg").mkdir()
    shutil.copyfile(TS / "example_ct_sm.nii.gz", tmp_path / "ct" / "abdomen01.nii.gz")
    shutil.copyfile(TS / "example_seg.nii.gz", tmp_path / "seg" / "abdomen01.nii.gz")
    out = tmp_path / "Dataset901_CompactAnatomy"
    assert main(["extractor", "labels", str(tmp_path / "ct"), str(out), "--labels", str(tmp_path / "seg")]) == 0
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["labels"] == {"background": 0, "organs": 1, "cardiac": 2, "muscles": 3, "bones": 4, "ribs": 5,
                                 "vertebrae": 6}
    assert dataset["channel_names"] == {"0": "CT"} and dataset["numTraining"] == 1
    seg = sitk.ReadImage(str(out / "labelsTr" / "abdomen01.nii.gz"))
    ct = sitk.ReadImage(str(out / "imagesTr" / "abdomen01_0000.nii.gz"))
    original = sitk.ReadImage(str(TS / "example_seg.nii.gz"))
    assert seg.GetSize() == original.GetSize() and seg.GetDirection() == original.GetDirection()
    compact, total = sitk.GetArrayFromImage(seg), sitk.GetArrayFromImage(original)
    np.testing.assert_array_equal(compact > 0, total > 0)
    assert np.all(compact[total == 5] == 1) and np.all(compact[(total >= 26) & (total <= 50)] == 6)
    hu = sitk.GetArrayFromImage(ct)
    assert hu.min() >= -1024 and hu.max() <= 3071


def test_missing_totalsegmentator_weights_are_named(tmp_path: Path, capsys) -> None:
    (tmp_path / "ct").mkdir()
    shutil.copyfile(TS / "example_ct_sm.nii.gz", tmp_path / "ct" / "a.nii.gz")
    fake = tmp_path / "bin" / "TotalSegmentator"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    weights = tmp_path / "weights"
    assert main(["extractor", "labels", str(tmp_path / "ct"), str(tmp_path / "out"), "--weights", str(weights),
                 "--executable", str(fake)]) == 1
    err = capsys.readouterr().err
    assert f"{weights}/Dataset291_*" in err and "Dataset295_*" in err
