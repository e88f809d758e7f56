"""Folder evaluation on the real porcine and head-and-neck samples: values, aggregates, JSON/CSV, report, errors and
the TotalSegmentator subprocess (a stand-in script, since the real weights are not on CI machines)."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from synthct.io.totalseg import FAST_TOTAL_DATASET, find_totalsegmentator
from synthct.metrics.evaluate import EvaluationConfig, aggregate, evaluate_folder
from synthct.metrics.image import ms_ssim


def _write(array: np.ndarray, like: sitk.Image | None, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    if like is not None:
        image.CopyInformation(like)
    sitk.WriteImage(image, str(path), True)


@pytest.fixture()
def folders(tmp_path, samples_dir):
    """Two porcine cases (AB: CT + 10 HU as int16, TH: CT rolled by one voxel as float32) and one HN case."""
    ref = sitk.ReadImage(str(samples_dir / "porcine" / "ct.mha"))
    ct = sitk.GetArrayFromImage(ref)
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(samples_dir / "porcine" / "mask.mha")))
    mr = sitk.GetArrayFromImage(sitk.ReadImage(str(samples_dir / "porcine" / "mr.mha")))
    hn_ref = sitk.ReadImage(str(samples_dir / "openkbp_hn" / "ct.nii.gz"))
    hn = sitk.GetArrayFromImage(hn_ref)[32:96]
    hn_ref = sitk.GetImageFromArray(hn)
    hn_ref.SetSpacing((4.625, 4.625, 3.0))
    hn_mask = sitk.GetArrayFromImage(sitk.ReadImage(str(samples_dir / "openkbp_hn" / "mask.nii.gz")))[32:96]
    cases = {
        "1ABA001": (ref, ct, ct + np.int16(10), mask, mr),
        "1THA002": (ref, ct, np.roll(ct, 1, axis=2).astype(np.float32), mask, mr),
        "1HNA003": (hn_ref, hn, (hn - np.int16(25)), hn_mask, hn),
    }
    for case, (like, gt, pred, m, inp) in cases.items():
        _write(gt, like, tmp_path / "gt" / f"{case}.mha")
        _write(pred, like, tmp_path / "pred" / f"sct_{case}.mha")
        _write(m, like, tmp_path / "masks" / f"{case}.mha")
        _write(inp, like, tmp_path / "inputs" / f"mr_{case}.nii.gz")
    return tmp_path, {c: v[1:4] for c, v in cases.items()}


def test_aggregate_statistics():
    stats = aggregate([1.0, 2.0, 3.0, 10.0])
    assert stats == {
        "mean": 4.0,
        "std": pytest.approx(math.sqrt((9 + 4 + 1 + 36) / 4)),  # population std, as np.std in the official code
        "min": 1.0,
        "max": 10.0,
        "25pc": 1.75,
        "50pc": 2.5,
        "75pc": 4.75,
        "count": 4,
    }
    assert aggregate([])["count"] == 0


def test_evaluate_folder_values_files_and_report(folders):
    root, arrays = folders
    config = EvaluationConfig(
        pred_dir=root / "pred",
        gt_dir=root / "gt",
        out_dir=root / "out",
        masks_dir=root / "masks",
        inputs_dir=root / "inputs",
        totalseg_executable="no-such-totalsegmentator",
        progress=False,
    )
    result = evaluate_folder(config)
    assert result.segmentation_method == "bone_threshold"
    assert "TotalSegmentator unavailable" in result.notes[0]
    rows = {r["case_id"]: r for r in result.results}
    assert list(rows) == ["1ABA001", "1HNA003", "1THA002"]
    assert [rows[c]["region"] for c in rows] == ["AB", "HN", "TH"]
    ab, hn, th = rows["1ABA001"], rows["1HNA003"], rows["1THA002"]
    assert ab["mae"] == 10.0 and ab["psnr"] == pytest.approx(20 * math.log10(409.5), abs=1e-12)
    assert hn["mae"] == 25.0
    gt, pred, mask = arrays["1THA002"]
    assert th["ms_ssim"] == pytest.approx(ms_ssim(gt, pred, mask=mask), abs=1e-12)
    assert set(ab) == {"case_id", "region", "mae", "psnr", "ms_ssim", "bone_dice"}

    maes = [ab["mae"], hn["mae"], th["mae"]]
    assert result.aggregates["mae"]["mean"] == pytest.approx(np.mean(maes))
    assert result.aggregates["mae"]["count"] == 3
    assert result.aggregates_by_region["HN"]["mae"]["mean"] == 25.0

    out = root / "out"
    payload = json.loads((out / "metrics.json").read_text())
    assert payload["aggregates"]["psnr"]["50pc"] == pytest.approx(np.median([r["psnr"] for r in rows.values()]))
    assert [r["case_id"] for r in payload["results"]] == list(rows)
    with (out / "metrics_per_case.csv").open() as fh:
        csv_rows = list(csv.DictReader(fh))
    assert [float(r["mae"]) for r in csv_rows] == maes
    with (out / "metrics_aggregates.csv").open() as fh:
        agg = list(csv.DictReader(fh))
    assert {(r["scope"], r["metric"]) for r in agg} >= {("all", "ms_ssim"), ("TH", "bone_dice")}
    assert not (out / "segmentation_per_class.csv").exists()

    for png in ("qa/1ABA001.png", "qa/1HNA003.png", "qa/1THA002.png", "qa/mae_by_region.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    index = (out / "index.html").read_text()
    assert 'src="qa/1THA002.png"' in index and 'src="qa/mae_by_region.png"' in index
    assert "TotalSegmentator unavailable" in index


def test_shape_mismatch_is_an_error(folders):
    root, _ = folders
    _write(np.zeros((40, 186, 146), np.int16), None, root / "pred" / "sct_1ABA001.mha")
    _write(np.zeros((40, 186, 140), np.int16), None, root / "masks" / "1THA002.mha")
    config = EvaluationConfig(root / "pred", root / "gt", root / "out", masks_dir=root / "masks", progress=False)
    with pytest.raises(ValueError, match=r"2 bad file\(s\), nothing written") as info:
        evaluate_folder(config)
    assert "sct_1ABA001.mha has size (146, 186, 40) (x, y, z) but the ground truth" in str(info.value)
    assert "1THA002: mask" in str(info.value)
    assert not (root / "out").exists()  # every pair is checked before anything is written


FAKE_TOTALSEGMENTATOR = """#!{python}
# Stand-in for the TotalSegmentator CLI: records its arguments, writes a label map from HU thresholds.
import json, os, sys
import numpy as np
import SimpleITK as sitk
args = sys.argv[1:]
with open({log!r}, "a") as fh:
    fh.write(json.dumps({{"args": args, "weights": os.environ.get("TOTALSEG_WEIGHTS_PATH")}}) + "\\n")
image = sitk.ReadImage(args[args.index("-i") + 1])
ct = sitk.GetArrayFromImage(image)
labels = np.zeros(ct.shape, np.uint8)
labels[(ct > -200) & (ct <= 250)] = 5     # "liver": soft tissue
labels[ct > 250] = 26                      # "vertebra S1": bone
labels[ct > 1500] = 91                     # "skull": dense bone (HN list only)
out = sitk.GetImageFromArray(labels)
out.CopyInformation(image)
sitk.WriteImage(out, args[args.index("-o") + 1])
"""


def test_totalsegmentator_subprocess(folders, tmp_path):
    root, _ = folders
    for folder in ("gt", "pred", "masks"):  # two cases (AB, HN) keep the number of subprocesses small
        next((root / folder).glob("*1THA002.mha")).unlink()
    log = tmp_path / "calls.jsonl"
    exe = tmp_path / "bin" / "TotalSegmentator"
    exe.parent.mkdir()
    exe.write_text(FAKE_TOTALSEGMENTATOR.format(python=sys.executable, log=str(log)))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    weights = tmp_path / "weights"
    runner, reason = find_totalsegmentator(weights, exe)
    assert runner is None and "no fast 'total' weights" in reason
    checkpoint = (
        weights / FAST_TOTAL_DATASET / "nnUNetTrainer_4000epochs_NoMirroring__nnUNetPlans__3d_fullres" / "fold_0"
    )
    checkpoint.mkdir(parents=True)
    (checkpoint / "checkpoint_final.pth").write_bytes(b"")
    assert find_totalsegmentator(weights, exe)[0] is not None

    config = EvaluationConfig(
        pred_dir=root / "pred",
        gt_dir=root / "gt",
        out_dir=root / "out",
        masks_dir=root / "masks",
        segmentation="totalsegmentator",
        totalseg_weights=weights,
        totalseg_executable=str(exe),
        report=False,
        progress=False,
    )
    result = evaluate_folder(config)
    assert result.segmentation_method == "totalsegmentator"
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(calls) == 4  # sCT and CT of two cases
    assert all(c["weights"] == str(weights) for c in calls)
    assert all({"--fast", "--ml"} <= set(c["args"]) and c["args"][-2:] == ["--task", "total"] for c in calls)

    rows = {r["case_id"]: r for r in result.results}
    assert rows["1ABA001"]["DICE"] > 0.9 and rows["1ABA001"]["HD95"] < 5.0  # CT + 10 HU: nearly the same labels
    assert "bone_dice" not in rows["1ABA001"]
    # the HN case scores vertebra and skull; every voxel is 25 HU darker, so a few thresholded voxels change
    per_class = list(csv.DictReader((root / "out" / "segmentation_per_class.csv").open()))
    assert {int(r["label"]) for r in per_class if r["case_id"] == "1HNA003"} <= {26, 91}
    assert {int(r["label"]) for r in per_class if r["case_id"] == "1ABA001"} <= {5, 26}
    assert (root / "out" / "segmentations" / "1HNA003_sct.nii.gz").is_file()

    # precomputed ground-truth label maps are used instead of segmenting the CT
    seg_dir = root / "out" / "segmentations"
    gt_seg = tmp_path / "gt_seg"
    gt_seg.mkdir()
    for case in rows:
        (seg_dir / f"{case}_ct.nii.gz").rename(gt_seg / f"{case}.nii.gz")
    log.unlink()
    again = evaluate_folder(dataclasses.replace(config, gt_seg_dir=gt_seg))
    assert len(log.read_text().splitlines()) == 2  # the sCTs only
    assert [r["DICE"] for r in again.results] == [r["DICE"] for r in result.results]


def test_totalsegmentator_required_but_missing(folders):
    root, _ = folders
    config = EvaluationConfig(
        root / "pred",
        root / "gt",
        root / "out",
        segmentation="totalsegmentator",
        totalseg_executable="no-such-totalsegmentator",
        progress=False,
    )
    with pytest.raises(FileNotFoundError, match="TotalSegmentator requested but the TotalSegmentator command"):
        evaluate_folder(config)
