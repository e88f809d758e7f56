"""Pairing of prediction / ground-truth / mask / input files by case id."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from synthct.metrics.cases import case_id_of, image_stem, pair_cases, region_of


def _touch(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")
    return folder


def test_ids_and_regions():
    assert image_stem(Path("sct_1HNA001.nii.gz")) == "sct_1HNA001"
    assert image_stem(Path("1ABC002.mha")) == "1ABC002"
    assert image_stem(Path("notes.txt")) is None and image_stem(Path(".mha")) is None
    assert case_id_of("sct_1HNA001") == "1HNA001"
    assert case_id_of("mask_2THB123") == "2THB123"
    assert case_id_of("patient7") == "patient7"
    assert case_id_of("3HNA001") == "3HNA001"[-7:] == "3HNA001"  # task 3 does not exist: the whole stem
    assert [region_of(c) for c in ("1HNA001", "2THB123", "1ABE042", "patient7", "1XXA001")] == [
        "HN",
        "TH",
        "AB",
        "unknown",
        "unknown",
    ]


def test_official_and_plain_naming(tmp_path):
    pred = _touch(tmp_path / "pred", "sct_1HNA001.mha", "1ABA002.nii.gz", "case9.mha", "readme.txt")
    gt = _touch(tmp_path / "gt", "1HNA001.mha", "ct_1ABA002.nii.gz", "case9.nii")
    masks = _touch(tmp_path / "masks", "mask_1HNA001.mha", "1ABA002.mha", "case9.mha", "1THA999.mha")
    cases = pair_cases(pred, gt, masks_dir=masks)
    assert [(c.case_id, c.region, c.pred.name, c.gt.name, c.mask.name) for c in cases] == [
        ("1ABA002", "AB", "1ABA002.nii.gz", "ct_1ABA002.nii.gz", "1ABA002.mha"),
        ("1HNA001", "HN", "sct_1HNA001.mha", "1HNA001.mha", "mask_1HNA001.mha"),
        ("case9", "unknown", "case9.mha", "case9.nii", "case9.mha"),
    ]
    assert all(c.input is None and c.gt_seg is None for c in cases)


def test_last_seven_characters_convention(tmp_path):
    pred = _touch(tmp_path / "pred", "upload_abcdefg.mha")  # the official rule holds for any 7 characters
    gt = _touch(tmp_path / "gt", "abcdefg.mha")
    (case,) = pair_cases(pred, gt)
    assert (case.case_id, case.pred.name) == ("abcdefg", "upload_abcdefg.mha")


def test_missing_and_extra_files_are_errors(tmp_path):
    gt = _touch(tmp_path / "gt", "1HNA001.mha", "1HNA002.mha")
    pred = _touch(tmp_path / "pred", "sct_1HNA001.mha")
    with pytest.raises(FileNotFoundError, match=r"no prediction in .*pred for case\(s\): 1HNA002"):
        pair_cases(pred, gt)
    _touch(pred, "1HNA002.mha", "sct_1HNA003.mha")
    with pytest.raises(FileNotFoundError, match=r"without a ground-truth CT .*: sct_1HNA003.mha"):
        pair_cases(pred, gt)
    (pred / "sct_1HNA003.mha").unlink()
    _touch(pred, "other_1HNA002.mha")
    with pytest.raises(ValueError, match="case '1HNA002' has two prediction files"):
        pair_cases(pred, gt)
    (pred / "other_1HNA002.mha").unlink()
    masks = _touch(tmp_path / "masks", "1HNA001.mha")
    with pytest.raises(FileNotFoundError, match=r"no mask in .*masks for case\(s\): 1HNA002"):
        pair_cases(pred, gt, masks_dir=masks)
    with pytest.raises(FileNotFoundError, match="input folder .*nowhere does not exist"):
        pair_cases(pred, gt, inputs_dir=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no images"):
        pair_cases(pred, _touch(tmp_path / "empty"))
    _touch(gt, "1HNA001.nii.gz")
    with pytest.raises(ValueError, match="two ground-truth files"):
        pair_cases(pred, gt)


def test_metrics_import_needs_no_monai_matplotlib_or_torch():
    code = (
        "import sys, synthct.metrics, synthct.cli.evaluate; "
        "print(sorted(m for m in ('monai', 'matplotlib', 'torch', 'tqdm', 'totalsegmentator') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
