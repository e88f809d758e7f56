"""End to end through the command line, on small volumes cut from the real porcine sample:
convert → plan → preprocess → train (2 epochs) → resume → export → process.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from synthct.challenge.algorithm import main as process_main
from synthct.cli.main import main

ENV = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


def _gc_folder(root: Path, mr: sitk.Image, mask: sitk.Image) -> Path:
    for sub, image in (("mri", mr), ("body", mask)):
        (root / "images" / sub).mkdir(parents=True)
        sitk.WriteImage(image, str(root / "images" / sub / "case.mha"))
    (root / "region.json").write_text(json.dumps("Abdomen"))
    return root


def test_convert_plan_preprocess_train_resume_export_process(mini_synthrad: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    for name in ENV:  # the commands export their folders; restore the environment afterwards
        monkeypatch.setenv(name, str(tmp_path / "unused"))
    raw, pre, res = (tmp_path / n for n in ("raw", "preprocessed", "results"))
    folders = ["--raw", str(raw), "--preprocessed", str(pre)]
    assert main(["convert", str(mini_synthrad), str(raw), "--task", "1", "--id-base", "600"]) == 0
    assert "skipped 1ABX999: ct.mha does not match the input grid" in capsys.readouterr().out
    assert main(["plan", "613", "--arch", "unet", "--patch-size", "16", "32", "32", "--batch-size", "2",
                 "--base-features", "4", "--max-features", "16", "--num-processes", "1",
                 "--intensity-samples", "100000", *folders]) == 0
    assert main(["plan", "613", "--arch", "resunet", "--input-skip", "--num-processes", "1", *folders]) == 1
    assert "needs a HU-calibrated input (clip_zscore, CBCT)" in capsys.readouterr().err  # MR has no HU scale
    assert main(["preprocess", "613", "--plans", "synthctUNetPlans", "--num-processes", "1", *folders]) == 0
    train = ["train", "613", "0", "--plans", "synthctUNetPlans", "--iterations", "3", "--val-iterations", "2",
             "--device", "cpu", "--preprocessed", str(pre), "--results", str(res)]
    assert main([*train, "--epochs", "2"]) == 0
    assert "final validation" in capsys.readouterr().err  # its progress bar
    results = res / "Dataset613_SynthRAD2025Task1AB" / "SynthCTTrainerL1__synthctUNetPlans__3d_fullres"
    fold = results / "fold_0"
    first = torch.load(fold / "checkpoint_final.pth", weights_only=False)
    assert first["current_epoch"] == 2 and len(first["logging"]["train_losses"]) == 2
    for name in ("checkpoint_best.pth", "progress.png", "train_config.json", "validation/summary.json"):
        assert (fold / name).is_file(), name

    summary = json.loads((fold / "validation" / "summary.json").read_text())
    splits = json.loads((pre / "Dataset613_SynthRAD2025Task1AB" / "splits_final.json").read_text())
    assert len(splits) == 5 and sorted(summary["cases"]) == sorted(splits[0]["val"])
    (case,) = splits[0]["val"]
    scores = summary["cases"][case]
    assert 0 < scores["mae_hu"] < 1000 and 5 < scores["psnr_db"] < 60 and 0 < scores["ms_ssim"] <= 1
    sct = sitk.ReadImage(str(fold / "validation" / f"{case}.mha"))
    mr = sitk.ReadImage(str(raw / "Dataset613_SynthRAD2025Task1AB" / "imagesTr" / f"{case}_0000.mha"))
    assert (sct.GetSize(), sct.GetSpacing(), sct.GetOrigin()) == (mr.GetSize(), mr.GetSpacing(), mr.GetOrigin())
    hu = sitk.GetArrayFromImage(sct)
    assert hu.min() >= -1024 and hu.max() <= 3071

    # resume: the final checkpoint is at epoch 2; three epochs in total train exactly one more
    assert main([*train, "--epochs", "3", "--continue", "--no-validation"]) == 0
    resumed = torch.load(fold / "checkpoint_final.pth", weights_only=False)
    assert resumed["current_epoch"] == 3
    losses = resumed["logging"]["train_losses"]
    assert len(losses) == 3 and losses[:2] == first["logging"]["train_losses"]

    model = tmp_path / "weights" / "mri-AB"
    assert main(["export", str(results), str(model), "--checkpoint", "final"]) == 0
    from synthct.network.checkpoint import load_model_folder

    manifest, networks = load_model_folder(model)
    assert manifest.task == "mri" and manifest.regions == ("AB",) and manifest.patch_size == (16, 32, 32)
    assert not manifest.trained_with_mirroring and len(networks) == 1
    assert manifest.target_normalization.to_json() == first["init_args"]["plans"]["synthct"]["target_normalization"]

    porcine = Path(__file__).resolve().parents[2] / "samples" / "porcine"
    mr_full = sitk.ReadImage(str(porcine / "mr.mha"))[20:100, 30:130, :]
    mask_full = sitk.ReadImage(str(porcine / "mask.mha"))[20:100, 30:130, :]
    models = tmp_path / "app" / "resources" / "models.json"
    models.parent.mkdir(parents=True)
    entry = {"model": str(model), "step": 0.5, "blend": "mean"}
    models.write_text(json.dumps({"version": 1, "models": {"mri": dict.fromkeys(("HN", "TH", "AB"), entry)}}))
    inp = _gc_folder(tmp_path / "in", mr_full, mask_full)
    assert process_main(["--input", str(inp), "--output", str(tmp_path / "out"), "--device", "cpu",
                         "--models", str(models)]) == 0
    out = sitk.ReadImage(str(tmp_path / "out" / "images" / "synthetic-ct" / "case.mha"))
    assert out.GetSize() == mr_full.GetSize() and out.GetOrigin() == mr_full.GetOrigin()
    sct_hu = sitk.GetArrayFromImage(out)
    body = sitk.GetArrayFromImage(mask_full) > 0
    assert np.all(sct_hu[~body] == -1000.0) and np.unique(sct_hu[body]).size > 100
