"""Bad input to ``synthct dose``: one clear ERROR line, exit 1, no traceback, nothing written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from synthct.cli.main import main


def _mask_like(reference: Path, out: Path, fill: slice | None) -> Path:
    ref = sitk.ReadImage(str(reference))
    a = np.zeros(sitk.GetArrayFromImage(ref).shape, np.uint8)
    if fill is not None:
        a[fill] = 1
    image = sitk.GetImageFromArray(a)
    image.CopyInformation(ref)
    sitk.WriteImage(image, str(out))
    return out


def _run(capsys: pytest.CaptureFixture[str], slab: Path, out: Path, *extra: str, sct: Path | None = None) -> str:
    rc = main(["dose", "--ct", str(slab / "ct.mha"), "--sct", str(sct or slab / "cbct.mha"), "--mask",
               str(slab / "mask.mha"), "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert rc == 1, err
    errors = [line for line in err.splitlines() if " ERROR " in line]
    assert len(errors) == 1, err
    assert "Traceback" not in err
    assert not out.exists(), "nothing may be written on bad input"
    assert not list(out.parent.glob(f".{out.name}.partial-*"))
    return errors[0]


def test_sct_on_another_grid(slab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pyRadPlan")
    sct = tmp_path / "small.mha"
    sitk.WriteImage(sitk.ReadImage(str(slab / "cbct.mha"))[:, :, :10], str(sct))
    line = _run(capsys, slab, tmp_path / "out", sct=sct)
    assert "grid differs from the CT's" in line and "size" in line and "small.mha" in line


def test_empty_target(slab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pyRadPlan")
    target = _mask_like(slab / "ct.mha", tmp_path / "empty.mha", None)
    assert "the target mask is empty" in _run(capsys, slab, tmp_path / "out", "--target", str(target))


def test_target_outside_the_body(slab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pyRadPlan")
    body = sitk.GetArrayFromImage(sitk.ReadImage(str(slab / "mask.mha")))
    assert body[:, :12, :12].sum() == 0  # the corner lies outside the body
    target = _mask_like(slab / "ct.mha", tmp_path / "corner.mha", np.s_[:, :12, :12])
    assert "outside the body" in _run(capsys, slab, tmp_path / "out", "--target", str(target))


def test_missing_structure_name(slab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pyRadPlan")
    line = _run(capsys, slab, tmp_path / "out", "--structures", str(slab / "labels.mha"), "--structure-names",
                str(slab / "labels.json"), "--target-label", "PTV_high")
    assert "no structure named 'PTV_high'" in line and "ROI" in line


def test_label_without_a_name(slab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pyRadPlan")
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"4": "ROI"}))
    line = _run(capsys, slab, tmp_path / "out", "--structures", str(slab / "labels.mha"), "--structure-names",
                str(names))
    assert "have no name" in line and "[1, 5]" in line  # the lungs (2, 3) lie above the slab


def test_without_pyradplan_help_works_and_a_run_says_how_to_install(
        slab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyRadPlan", None)  # import pyRadPlan now raises ImportError
    with pytest.raises(SystemExit) as exc:
        main(["dose", "--help"])
    assert exc.value.code == 0
    assert "make dose-venv" in capsys.readouterr().out
    line = _run(capsys, slab, tmp_path / "out")
    assert "make dose-venv" in line and "pyRadPlan" in line


def test_grand_challenge_image_has_no_dose_extra(repo_root: Path) -> None:
    """The image installs requirements.txt only; neither it nor the Dockerfile names the dose extra."""
    requirements = (repo_root / "requirements.txt").read_text().lower()
    dockerfile = (repo_root / "Dockerfile").read_text().lower()
    for name in ("pyradplan", "pymedphys", "requirements-dose"):
        assert name not in requirements and name not in dockerfile
    assert "numpy==2.4.6" in (repo_root / "requirements-dose.txt").read_text()


def test_pyradplan_gpu_backends_are_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """pyRadPlan prefers a GPU backend by default; synthct turns that off on the first import unless asked."""
    prp = pytest.importorskip("pyRadPlan")
    from synthct.dose import engine

    monkeypatch.setitem(engine._STATE, "configured", False)
    monkeypatch.setattr(prp.settings.xp, "prefer_gpu", True)
    assert engine.require_pyradplan().settings.xp.prefer_gpu is False
    assert engine.require_pyradplan(gpu=True).settings.xp.prefer_gpu is True
    assert engine.require_pyradplan().settings.xp.prefer_gpu is True  # None keeps the explicit choice
    engine.require_pyradplan(gpu=False)


def test_engine_failure_inside_the_staged_folder(slab: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """pyRadPlan 0.5.0's proton SSD step fails on this thin slab at a 5 mm CT / 8 mm dose grid: one line naming the
    stage and the settings, and the staged output folder is removed."""
    pytest.importorskip("pyRadPlan")
    line = _run(capsys, slab, tmp_path / "out", "--modality", "proton", "--ct-resolution", "5", "--dose-grid", "8",
                "--max-iter", "5")
    assert "pyRadPlan failed in the proton" in line and "8 mm dose grid" in line
