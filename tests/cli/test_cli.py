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
    model_line = next(line for line in printed.splitlines() if line.startswith("model: "))
    assert "RANDOM-WEIGHT demo model" in model_line or model_line.endswith("(a DEMO model by its synthct.json)")
    path = Path(printed.split("sCT written: ")[1].splitlines()[0])
    assert (tmp_path / "demo" / "preview.png").stat().st_size > 10_000
    assert "MAE" in printed and "MS-SSIM" in printed
    hu = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(repo_root / "samples" / "porcine" / "mask.mha")))
    assert hu.shape == mask.shape and np.all(hu[mask == 0] == -1000)


def test_demo_names_the_routed_model_it_ran(repo_root: Path, tiny_model: Path, tmp_path: Path, capsys) -> None:
    """With resources/models.json routing to a user's model, the demo names that folder, not 'bundled weights'."""
    import json
    import shutil

    from testutils import write_models_json

    repo = tmp_path / "repo"
    (repo / "samples").mkdir(parents=True)
    (repo / "samples" / "porcine").symlink_to(repo_root / "samples" / "porcine")
    model = shutil.copytree(tiny_model, repo / "weights" / "mri" / "HN")
    manifest = json.loads((model / "synthct.json").read_text())
    (model / "synthct.json").write_text(json.dumps({**manifest, "description": "trained on 3 HN cases"}))
    write_models_json(repo, model)
    assert main(["demo", "--out", str(tmp_path / "demo"), "--repo", str(repo), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    model_line = next(line for line in printed.splitlines() if line.startswith("model: "))
    assert model_line == (f"model: {model.resolve()} (routed in resources/models.json, NOT a demo model: the "
                          "README's demo scores do not apply)")
    assert "bundled weights" not in printed


def test_demo_result_labels_a_demo_model(tmp_path: Path) -> None:
    from synthct.challenge.demo import DemoResult

    result = DemoResult(tmp_path, tmp_path, False, -1000, 2000, 67.5, 25.0, 0.8, tmp_path / "porcine-demo", True)
    assert result.model_label == f"{tmp_path / 'porcine-demo'} (a DEMO model by its synthct.json)"
