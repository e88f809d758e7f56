"""Stock ``nnUNetv2_train ... -tr SynthCTTrainerL1 -p synthctResUNetPlans`` through ``nnUNet_extTrainer``, one
iteration on the CPU, on the session's mini dataset (real porcine crops), then ``synthct export`` of its result.

The trainer is found by nnunetv2's own search (``nnunetv2/utilities/find_objects.py``), not by synthct's registry;
the hyper-parameters come from ``$SYNTHCT_TRAIN_CONFIG``.

Where ``import torchvision`` works, the test runs the unmodified ``nnUNetv2_train`` console script. nnunetv2 first
searches its own trainer package, whose ``primus`` trainers import ``timm``, which needs ``torchvision``. On the CPU
machines of this project the installed torchvision is PyPI's CUDA 13 build beside a CPU torch and cannot be
imported (``RuntimeError: operator torchvision::nms does not exist``), so stock nnU-Net cannot resolve *any*
non-default trainer there, synthct's or its own. In that case only that first, internal search is skipped: the test
calls nnunetv2's ``recursive_find_python_class`` exactly as ``find_objects.py`` does for each ``nnUNet_extTrainer``
folder, hands the class it returns to the stock entry point ``run_training_entry`` and runs the rest unchanged.
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
    from synthct.paths import use_nnunet_paths
    from synthct.preprocessing.preprocessor import preprocess_dataset

    # CLI tests that ran before (``--preprocessed DIR``) repoint nnU-Net's process-wide folders: use the session's.
    use_nnunet_paths(nnunet_dirs["raw"], nnunet_dirs["preprocessed"], nnunet_dirs["results"])
    preprocess_dataset(planned_dataset, "synthctResUNetPlans", num_processes=1)
    env = {**os.environ, "nnUNet_raw": str(nnunet_dirs["raw"]), "nnUNet_preprocessed": str(nnunet_dirs["preprocessed"]),
           "nnUNet_results": str(nnunet_dirs["results"]), "nnUNet_extTrainer": EXT_PATH, "nnUNet_n_proc_DA": "0",
           "nnUNet_compile": "f", TRAIN_CONFIG_ENV: json.dumps(ONE_ITERATION),
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    args = [planned_dataset, "3d_fullres", "0", "-tr", "SynthCTTrainerL1", "-p", "synthctResUNetPlans",
            "-device", "cpu"]
    if _torchvision_imports(env):
        cmd = [str(Path(sys.executable).parent / "nnUNetv2_train"), *args]
    else:  # see the module docstring: nnU-Net's own external-folder lookup, then the stock entry point
        cmd = [sys.executable, "-c", f"""
import os, sys
from nnunetv2.utilities.find_class_by_name import recursive_find_python_class
import nnunetv2.run.run_training as run_training
path = os.environ["nnUNet_extTrainer"]
found = recursive_find_python_class(path, "SynthCTTrainerL1", None, base_folder=path, verbose=True,
                                    cleanup_imports_from_base_folder=True)
run_training.recursive_find_trainer_class_by_name = lambda name: found
sys.argv = ["nnUNetv2_train", *{args!r}]
run_training.run_training_entry()
"""]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Found class SynthCTTrainerL1 in synthct_trainers" in proc.stdout  # nnU-Net's own lookup found it
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
