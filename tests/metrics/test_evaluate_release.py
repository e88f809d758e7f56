"""``synthct evaluate`` on the SynthRAD2025 release layout, the official HD95 policy in the outputs, montages in one
anatomical orientation and the per-region / per-class tables of index.html."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from testutils import SAMPLES, make_mini_synthrad

from synthct.cli.main import main
from synthct.metrics import report


def _predictions(release: Path, out: Path, offset: int = 10) -> Path:
    out.mkdir(parents=True)
    for case in sorted((release / "Task1" / "AB").glob("1ABX*")):
        ct = sitk.ReadImage(str(case / "ct.mha"))
        sitk.WriteImage(ct + offset, str(out / f"{case.name}.mha"))
    return out


def test_evaluate_release_layout(tmp_path: Path) -> None:
    release = make_mini_synthrad(tmp_path / "rel", n_cases=3, bad_case=False)
    region = release / "Task1" / "AB"
    pred = _predictions(release, tmp_path / "pred")
    out = tmp_path / "eval"
    assert main(["evaluate", "--pred", str(pred), "--gt", str(region), "--masks", str(region), "--inputs",
                 str(region), "--out", str(out), "--segmentation", "bone", "--no-progress"]) == 0
    payload = json.loads((out / "metrics.json").read_text())
    assert [r["case_id"] for r in payload["results"]] == ["1ABX000", "1ABX001", "1ABX002"]
    assert all(r["mae"] == 10.0 and r["region"] == "AB" for r in payload["results"])
    assert payload["hd95_missing_class_policy"]["name"] == "exclude"
    assert payload["hd95_missing_class_policy"]["official"] is True
    index = (out / "index.html").read_text()
    assert "Per region (mean ± std, n)" in index and "<th>AB</th><td>10 ± 0 (3)</td>" in index
    # the whole release root works too (Task1/AB/<id>/ct.mha two levels down)
    assert main(["evaluate", "--pred", str(pred), "--gt", str(release), "--out", str(tmp_path / "e2"),
                 "--segmentation", "bone", "--no-report", "--no-progress"]) == 0


def test_bad_pair_found_before_anything_is_written(tmp_path: Path, capsys) -> None:
    release = make_mini_synthrad(tmp_path / "rel", n_cases=3, bad_case=False)
    pred = _predictions(release, tmp_path / "pred")
    ct = sitk.ReadImage(str(release / "Task1" / "AB" / "1ABX002" / "ct.mha"))
    sitk.WriteImage(ct[:, :, :10], str(pred / "1ABX002.mha"))  # the last case is cut: found before the first
    out = tmp_path / "eval"
    assert main(["evaluate", "--pred", str(pred), "--gt", str(release / "Task1" / "AB"), "--out", str(out),
                 "--segmentation", "bone", "--no-progress"]) == 1
    assert "1ABX002: prediction" in capsys.readouterr().err
    assert not out.exists()


def test_montage_orientation_is_fixed_whatever_the_direction() -> None:
    """A (-1, -1, 1) image holding the flipped voxels of an identity image is the same anatomy: same display."""
    ct = sitk.ReadImage(str(SAMPLES / "porcine" / "ct.mha"))
    arr = sitk.GetArrayFromImage(ct)
    flipped = sitk.GetImageFromArray(np.ascontiguousarray(arr[:, ::-1, ::-1]))
    flipped.SetSpacing(ct.GetSpacing())
    flipped.SetDirection((-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
    flipped.SetOrigin(ct.TransformIndexToPhysicalPoint((ct.GetSize()[0] - 1, ct.GetSize()[1] - 1, 0)))
    (shown, none), spacing = report.to_display_orientation((sitk.GetArrayFromImage(flipped), None), flipped)
    np.testing.assert_array_equal(shown, arr)
    assert none is None and spacing == ct.GetSpacing()[::-1]
    rotated = sitk.GetImageFromArray(np.ascontiguousarray(np.swapaxes(arr, 1, 2)))  # x and y swapped: 90° about z
    rotated.SetSpacing((1.0, 1.0, 2.5))
    rotated.SetDirection((0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    (shown,), _ = report.to_display_orientation((sitk.GetArrayFromImage(rotated),), rotated)
    np.testing.assert_array_equal(shown, arr)


def test_index_lists_per_class_scores_and_missing_classes(tmp_path: Path) -> None:
    rows = [{"case_id": "1ABA001", "region": "AB", "DICE": 0.5, "HD95": 2.0}]
    per_class = [{"case_id": "1ABA001", "label": 5, "dice": 0.0, "hd95_mm": float("nan"), "missing": True},
                 {"case_id": "1ABA001", "label": 26, "dice": 1.0, "hd95_mm": 2.0, "missing": False}]
    path = report.write_index(tmp_path / "index.html", results=rows, aggregates={}, montages={}, boxplot=None,
                              per_class=per_class)
    text = path.read_text()
    assert "<tr><th>5</th><td>1</td><td>0</td><td>-</td><td>1ABA001</td></tr>" in text
    assert "<tr><th>26</th><td>1</td><td>1</td><td>2</td><td></td></tr>" in text
    assert "Missing classes (1)" in text and "<li>label 5 in 1ABA001</li>" in text
