"""``synthct convert``: SynthRAD2025 layout → nnU-Net raw datasets, with per-case validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from synthct.preprocessing.dataset_conversion import (
    convert_synthrad,
    dataset_id,
    dataset_name,
    read_exclude_file,
)


def test_converted_dataset_layout_and_geometry_rejection(mini_synthrad: Path, tmp_path: Path) -> None:
    (report,) = convert_synthrad(mini_synthrad, tmp_path, task=1, workers=2)
    out = tmp_path / "Dataset513_SynthRAD2025Task1AB"
    assert report.dataset_dir == out
    assert sorted(report.converted) == [f"1ABX{k:03d}" for k in range(5)]
    assert list(report.skipped) == ["1ABX999"]
    assert "ct.mha does not match the input grid: ct.mha origin" in report.skipped["1ABX999"]
    assert not list(out.rglob("1ABX999*"))  # nothing of the rejected case is left behind
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["channel_names"] == {"0": "MR", "1": "noNorm"}
    assert dataset["labels"] == {"background": 0, "body": 1}
    assert dataset["numTraining"] == 5 and dataset["file_ending"] == ".mha"
    assert dataset["synthct"] == {"task": "mri", "regions": ["AB"], "input_channels": [0], "target_channels": [1],
                                  "hu_clip": [-1024.0, 3071.0]}
    saved = json.loads((out / "conversion_report.json").read_text())
    assert saved["skipped"] == report.skipped and len(saved["converted"]) == 5
    case = mini_synthrad / "Task1" / "AB" / "1ABX002"
    mr_in, ct_in = (sitk.ReadImage(str(case / f"{n}.mha")) for n in ("mr", "ct"))
    mr_out = sitk.ReadImage(str(out / "imagesTr" / "1ABX002_0000.mha"))
    ct_out = sitk.ReadImage(str(out / "imagesTr" / "1ABX002_0001.mha"))
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labelsTr" / "1ABX002.mha")))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(mr_out), sitk.GetArrayFromImage(mr_in))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ct_out),
                                  np.clip(sitk.GetArrayFromImage(ct_in), -1024, 3071))
    assert set(np.unique(label)) <= {0, 1} and label.dtype == np.uint8
    for image in (mr_out, ct_out):
        assert image.GetSpacing() == mr_in.GetSpacing() and image.GetOrigin() == mr_in.GetOrigin()


def test_every_bad_case_is_skipped_with_its_reason(synthrad_factory, tmp_path: Path) -> None:
    make, write_case = synthrad_factory
    root = make(tmp_path / "dl", n_cases=2, bad_case=False)
    good = root / "Task1" / "AB" / "1ABX000"
    mr, ct, mask = (sitk.ReadImage(str(good / f"{n}.mha")) for n in ("mr", "ct", "mask"))
    empty = sitk.Image(mask)
    empty *= 0
    write_case(root / "Task1" / "AB" / "1ABE001", mr, ct, empty)
    write_case(root / "Task1" / "AB" / "1ABS002", mr, ct[:, :, :10], mask)
    (root / "Task1" / "AB" / "1ABM003").mkdir()
    sitk.WriteImage(mr, str(root / "Task1" / "AB" / "1ABM003" / "mr.mha"))
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("# misaligned\n1ABX001  # visual check\n\n")
    (report,) = convert_synthrad(root, tmp_path / "raw", task=1, region="AB", exclude_file=exclude)
    assert report.converted == ["1ABX000"]
    assert report.excluded == ["1ABX001"]
    assert report.skipped == {
        "1ABE001": "mask.mha is empty",
        "1ABS002": "ct.mha does not match the input grid: ct.mha size (64, 64, 10) vs mr.mha (64, 64, 20)",
        "1ABM003": "missing ct.mha, mask.mha",
    }
    with pytest.raises(FileExistsError, match="exist"):
        convert_synthrad(root, tmp_path / "raw", task=1, region="AB")
    with pytest.raises(FileNotFoundError, match="no Task2"):
        convert_synthrad(root, tmp_path / "raw", task=2)


def test_regions_make_separate_or_joint_datasets(synthrad_factory, tmp_path: Path) -> None:
    make, write_case = synthrad_factory
    root = make(tmp_path / "dl", n_cases=2, bad_case=False)
    ab = root / "Task1" / "AB" / "1ABX000"
    images = [sitk.ReadImage(str(ab / f"{n}.mha")) for n in ("mr", "ct", "mask")]
    write_case(root / "Task1" / "TH" / "1THX000", *images)
    reports = convert_synthrad(root / "Task1", tmp_path / "raw", task=1)
    assert [r.dataset_dir.name for r in reports] == ["Dataset512_SynthRAD2025Task1TH", "Dataset513_SynthRAD2025Task1AB"]
    (joint,) = convert_synthrad(root, tmp_path / "raw", task=1, region="all", id_base=600)
    assert joint.dataset_dir.name == "Dataset610_SynthRAD2025Task1"
    assert sorted(joint.converted) == ["1ABX000", "1ABX001", "1THX000"]
    assert json.loads((joint.dataset_dir / "dataset.json").read_text())["synthct"]["regions"] == ["TH", "AB"]


def test_dataset_ids_and_bad_arguments(tmp_path: Path) -> None:
    assert dataset_id(1, "HN") == 511 and dataset_id(2, "AB") == 523 and dataset_id(2, "all") == 520
    assert dataset_name(2, "TH") == "Dataset522_SynthRAD2025Task2TH"
    with pytest.raises(ValueError, match="task must be 1"):
        dataset_id(3, "HN")
    with pytest.raises(ValueError, match="region must be one of"):
        dataset_id(1, "XX")
    with pytest.raises(ValueError, match="outside nnU-Net"):
        dataset_id(1, "HN", base=990)
    with pytest.raises(FileNotFoundError, match="exclude file"):
        read_exclude_file(tmp_path / "none.txt")
