"""Stock ``nnUNetv2_train ... -tr SynthCTTrainerL1 -p synthctResUNetPlans`` through ``nnUNet_extTrainer``, one
iteration on the CPU, on the session's mini dataset (real porcine crops), then ``synthct export`` of its result.

The trainer is found by nnunetv2's own search (``nnunetv2/utilities/find_objects.py``), not by synthct's registry;
the hyper-parameters come from ``$SYNTHCT_TRAIN_CONFIG``. nnunetv2 searches its own trainer package first, which
imports ``timm``, which imports ``torchvision`` when it is installed (timm treats it as optional). Where the installed
torchvision is a build that cannot load beside this torch (the CPU-only CI and dev machines: PyPI's torchvision 0.28
is a CUDA 13 build), ``import torchvision`` raises and stock nnU-Net cannot find any trainer but its default; there
the test runs the same console-script function with torchvision marked absent, as on a machine without it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from synthct.training.config import TRAIN_CONFIG_ENV, TrainConfig, with_env_overrides
from synthct.training.nnunet_ext import PATH as EXT_PATH

REPO = Path(__file__).resolve().parents[2]
ONE_ITERATION = {"epochs": 1, "iterations_per_epoch": 1, "val_iterations_per_epoch": 1}


def _torchvision_imports(env: dict[str, str]) -> bool:
    probe = subprocess.run([sys.executable, "-c", "import torchvision"], capture_output=True, env=env, timeout=300)
    return probe.returncode == 0


def test_env_overrides_of_the_train_config(tmp_path: Path) -> None:
    config, overrides = with_env_overrides(TrainConfig(), {TRAIN_CONFIG_ENV: json.dumps(ONE_ITERATION)})
    assert overrides == ONE_ITERATION and (config.epochs, config.iterations_per_epoch) == (1, 1)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"optimizer": "adamw", "initial_lr": 1e-3}))
    assert with_env_overrides(TrainConfig(), {TRAIN_CONFIG_ENV: str(path)})[0].optimizer == "adamw"
    assert with_env_overrides(TrainConfig(epochs=7), {})[0].epochs == 7
    for bad, message in (('{"epoch": 1}', "unknown train_config keys"), ("{oops", "neither a JSON object"),
                         ('{"epochs": 0}', "epochs must be a positive int"), ("[1]", "neither")):
        try:
            with_env_overrides(TrainConfig(), {TRAIN_CONFIG_ENV: bad})
        except ValueError as exc:
            assert TRAIN_CONFIG_ENV in str(exc) and message in str(exc), exc
        else:
            raise AssertionError(f"{bad!r} was accepted")


def test_stock_nnunetv2_train_one_iteration(planned_dataset: str, nnunet_dirs: dict[str, Path],
                                            tmp_path: Path) -> None:
    from synthct.network.checkpoint import load_model_folder
    from synthct.network.export import export_model
    from synthct.preprocessing.preprocessor import preprocess_dataset

    preprocess_dataset(planned_dataset, "synthctResUNetPlans", num_processes=1)
    env = {**os.environ, "nnUNet_raw": str(nnunet_dirs["raw"]), "nnUNet_preprocessed": str(nnunet_dirs["preprocessed"]),
           "nnUNet_results": str(nnunet_dirs["results"]), "nnUNet_extTrainer": EXT_PATH, "nnUNet_n_proc_DA": "0",
           "nnUNet_compile": "f", TRAIN_CONFIG_ENV: json.dumps(ONE_ITERATION),
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    args = [planned_dataset, "3d_fullres", "0", "-tr", "SynthCTTrainerL1", "-p", "synthctResUNetPlans",
            "-device", "cpu"]
    if _torchvision_imports(env):
        cmd = [str(Path(sys.executable).parent / "nnUNetv2_train"), *args]
    else:
        cmd = [sys.executable, "-c", "import sys; sys.modules['torchvision'] = None; "  # = not installed
               "from nnunetv2.run.run_training import run_training_entry; "
               f"sys.argv = ['nnUNetv2_train', *{args!r}]; run_training_entry()"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"Using trainer 'SynthCTTrainerL1' from: {EXT_PATH}" in proc.stdout
    results = nnunet_dirs["results"] / planned_dataset / "SynthCTTrainerL1__synthctResUNetPlans__3d_fullres"
    fold = results / "fold_0"
    checkpoint = torch.load(fold / "checkpoint_final.pth", weights_only=False)
    assert checkpoint["current_epoch"] == 1 and len(checkpoint["logging"]["train_losses"]) == 1
    assert checkpoint["trainer_name"] == "SynthCTTrainerL1"
    assert json.loads((fold / "train_config.json").read_text())["iterations_per_epoch"] == 1
    assert (fold / "validation" / "summary.json").is_file()  # stock run_training's final validation ran ours
    logs = "".join(p.read_text() for p in fold.glob("training_log_*.txt"))
    assert f"train config overridden by ${TRAIN_CONFIG_ENV}" in logs
    model = export_model(results, tmp_path / "model", folds=[0])
    manifest, networks = load_model_folder(model)
    assert manifest.architecture["network_class_name"].endswith("ResidualUNetUpsample") and len(networks) == 1
