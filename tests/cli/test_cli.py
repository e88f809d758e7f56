"""The synthct command line: export, predict, demo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from synthct.cli.main import main


def test_export_then_predict(tiny_results: Path, porcine_dir: Path, tmp_path: Path, capsys) -> None:
    model = tmp_path / "model"
    assert main(["export", str(tiny_results), str(model), "--folds", "0", "--fp16"]) == 0
    assert (model / "synthct.json").is_file()
    assert main(["export", str(tiny_results), str(model)]) == 1  # exists, no --force
    assert "exists" in capsys.readouterr().err
    mr = sitk.ReadImage(str(porcine_dir / "mr.mha"))[:, :, :16]
    mask = sitk.ReadImage(str(porcine_dir / "mask.mha"))[:, :, :16]
    sitk.WriteImage(mr, str(tmp_path / "mr.mha"))
    sitk.WriteImage(mask, str(tmp_path / "mask.mha"))
    out = tmp_path / "sct.mha"
    assert main(["predict", "--model", str(model), "--image", str(tmp_path / "mr.mha"), "--mask",
                 str(tmp_path / "mask.mha"), "--out", str(out), "--step", "0.5", "--device", "cpu"]) == 0
    sct = sitk.ReadImage(str(out))
    assert sct.GetSize() == mr.GetSize() and sct.GetOrigin() == mr.GetOrigin()
    assert main(["predict", "--model", str(model), "--image", str(tmp_path / "mr.mha"), "--mask",
                 str(tmp_path / "mask.mha"), "--out", str(out), "--tta"]) == 1
    assert "not trained with mirroring" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_runs_on_the_bundled_sample(repo_root: Path, tmp_path: Path, capsys) -> None:
    assert main(["demo", "--out", str(tmp_path / "demo"), "--repo", str(repo_root), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "RANDOM-WEIGHT demo model" in printed or "bundled weights" in printed
    path = Path(printed.split("sCT written: ")[1].splitlines()[0])
    assert (tmp_path / "demo" / "preview.png").stat().st_size > 10_000
    assert "MAE" in printed and "MS-SSIM" in printed
    hu = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(repo_root / "samples" / "porcine" / "mask.mha")))
    assert hu.shape == mask.shape and np.all(hu[mask == 0] == -1000)
