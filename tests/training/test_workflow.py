"""docs/workflow.md, tiny: a miniature SynthRAD2025 release (real porcine crops, one broken case) → convert → plan →
preprocess → train → export --route → predict the held-out folder → evaluate on the release layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from testutils import make_mini_synthrad, write_models_json

from synthct.challenge.routing import resolve_route
from synthct.cli.main import main

ENV = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


def test_download_to_score(tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    for name, sub in zip(ENV, ("raw", "preprocessed", "results"), strict=True):
        monkeypatch.setenv(name, str(tmp_path / sub))  # as the guide exports them
    release = make_mini_synthrad(tmp_path / "synthRAD2025", n_cases=5, bad_case=True)
    held_out = make_mini_synthrad(tmp_path / "heldout", n_cases=2, bad_case=False)  # stands in for a held-out split
    app = tmp_path / "app"  # the repository root: resources/models.json routes every region to a "demo" model
    models = write_models_json(app, tiny_model)

    assert main(["convert", str(release), str(tmp_path / "raw"), "--task", "1", "--id-base", "700"]) == 0
    assert "skipped 1ABX999" in capsys.readouterr().out  # the broken case is reported and left out
    assert main(["plan", "713", "--arch", "unet", "--patch-size", "16", "32", "32", "--batch-size", "2",
                 "--base-features", "4", "--max-features", "16", "--num-processes", "1",
                 "--intensity-samples", "100000"]) == 0
    assert main(["preprocess", "713", "--plans", "synthctUNetPlans", "--num-processes", "1"]) == 0
    assert "Preprocessing cases" in capsys.readouterr().err  # a progress bar, not silence
    assert main(["train", "713", "0", "--plans", "synthctUNetPlans", "--epochs", "1", "--iterations", "2",
                 "--val-iterations", "1", "--device", "cpu", "--no-validation"]) == 0
    results = tmp_path / "results" / "Dataset713_SynthRAD2025Task1AB" / "SynthCTTrainerL1__synthctUNetPlans__3d_fullres"

    model = app / "weights" / "mri" / "AB"
    assert main(["export", str(results), str(model), "--route", "--models", str(models)]) == 0
    assert resolve_route(models, "mri", "AB").model_dir == model.resolve()  # process.py now uses it
    assert resolve_route(models, "mri", "HN").model_dir == tiny_model.resolve()  # the other regions are unchanged

    sct = tmp_path / "sct" / "Task1" / "AB"
    assert main(["predict", "-i", str(held_out / "Task1" / "AB"), "-o", str(sct), "--models", str(models),
                 "--device", "cpu", "--no-progress"]) == 0
    assert sorted(p.name for p in sct.glob("*.mha")) == ["1ABX000.mha", "1ABX001.mha"]

    gt = held_out / "Task1" / "AB"
    assert main(["evaluate", "--pred", str(sct), "--gt", str(gt), "--masks", str(gt), "--inputs", str(gt),
                 "--out", str(tmp_path / "eval"), "--segmentation", "bone", "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["aggregates"]["mae"]["count"] == 2 and 0 < metrics["aggregates"]["mae"]["mean"] < 2000
    assert (tmp_path / "eval" / "index.html").is_file()
