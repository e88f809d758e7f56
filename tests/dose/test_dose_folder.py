"""Folder mode: a SynthRAD2025-style release of real slabs, no contours (synthetic target), two worker processes,
resumable, and rank sharding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import SimpleITK as sitk
from testutils import DOSE_FAST as FAST

from synthct.cli.main import main
from synthct.dose.case import DoseCase
from synthct.dose.folder import FolderJob, cases_of
from synthct.dose.settings import default_settings

pytest.importorskip("pyRadPlan", reason="the dose extra is not installed (make dose-venv)")

#: Two cases cut from the real slab (different axial ranges, so two different CTs).
CASES = {"2ABA001": slice(0, 10), "2ABA002": slice(4, 14)}


@pytest.fixture(scope="module")
def release(slab: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("release")
    gt, pred = root / "Task2" / "AB", root / "pred"
    pred.mkdir()
    for case, z in CASES.items():
        (gt / case).mkdir(parents=True)
        for name in ("ct", "mask"):
            sitk.WriteImage(sitk.ReadImage(str(slab / f"{name}.mha"))[:, :, z], str(gt / case / f"{name}.mha"))
        sitk.WriteImage(sitk.ReadImage(str(slab / "cbct.mha"))[:, :, z], str(pred / f"{case}.mha"))
    return gt, pred


def test_folder_run_in_two_processes_then_resumes(release: tuple[Path, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    gt, pred = release
    out = tmp_path / "dose"
    args = ["dose", "--gt", str(gt), "--pred", str(pred), "--out", str(out), "--modality", "photon",
            "--workers", "2", *FAST]
    assert main(args) == 0
    summary = json.loads((out / "dose_summary.json").read_text())
    assert [r["case"] for r in summary["cases"]] == sorted(CASES)
    assert all(r["synthetic_target"] for r in summary["cases"])
    assert summary["mean"]["photon_dose_mae_percent"] > 0
    for case in CASES:
        data = json.loads((out / case / "dose_metrics.json").read_text())
        assert data["target"]["name"] == "PTV (synthetic)" and data["target"]["synthetic"] is True
        assert "centroid of the body" in data["target"]["how"]
        assert data["plans"]["photon"]["settings"]["gantry_angles"][:2] == [0.0, 72.0]  # --beams 5
    capsys.readouterr()
    assert main(args) == 0
    assert "2 already done" in capsys.readouterr().err  # main() owns logging: its lines go to stderr


def test_ranks_share_the_cases(release: tuple[Path, Path], tmp_path: Path) -> None:
    gt, pred = release
    template = DoseCase(case_id="", ct=Path(), scts={}, mask=Path(), settings=())

    def job(rank: int) -> FolderJob:
        return FolderJob(pred_dir=pred, gt_dir=gt, masks_dir=gt, out_dir=tmp_path, template=template,
                         settings_for=lambda region: (default_settings("photon", region),), rank=rank, world_size=2)

    first, second = cases_of(job(0)), cases_of(job(1))
    assert [c.case_id for c in first] == ["2ABA001"] and [c.case_id for c in second] == ["2ABA002"]
    assert second[0].scts == {"2ABA002": pred / "2ABA002.mha"} and second[0].mask == gt / "2ABA002" / "mask.mha"
    assert second[0].settings[0].gantry_angles == default_settings("photon", "AB").gantry_angles
    with pytest.raises(ValueError, match="rank 2 outside"):
        cases_of(job(2))


def test_evaluate_dose_adds_dose_columns(slab: Path, tmp_path: Path) -> None:
    """``synthct evaluate --dose`` on a one-case release cut from the real slab (small, default plan settings)."""
    gt, pred = tmp_path / "Task2" / "AB" / "2ABA003", tmp_path / "pred"
    gt.mkdir(parents=True)
    pred.mkdir()
    crop = (slice(40, 200), slice(40, 200), slice(2, 10))  # x, y, z: the body's centre, 8 slices
    for name in ("ct", "mask"):
        sitk.WriteImage(sitk.ReadImage(str(slab / f"{name}.mha"))[crop], str(gt / f"{name}.mha"))
    sitk.WriteImage(sitk.ReadImage(str(slab / "cbct.mha"))[crop], str(pred / "2ABA003.mha"))
    out = tmp_path / "eval"
    assert main(["evaluate", "--pred", str(pred), "--gt", str(gt.parent), "--masks", str(gt.parent), "--out",
                 str(out), "--segmentation", "bone", "--dose", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    row = metrics["results"][0]
    for modality in ("photon", "proton"):
        assert row[f"{modality}_dose_mae_percent"] > 0
        assert 0 < row[f"{modality}_gamma_pass_percent"] < 100
        assert f"{modality}_dvh_error" in metrics["aggregates"]
    assert any("SYNTHETIC" in n for n in metrics["notes"])
    assert "photon_gamma_pass_percent" in (out / "index.html").read_text()
    assert (out / "dose" / "2ABA003" / "dose_metrics.json").is_file()
    assert not list(tmp_path.glob(".eval.dose-work*"))
