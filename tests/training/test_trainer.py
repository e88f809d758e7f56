"""SynthCTTrainerL1 on the tiny porcine dataset: learning on a fixed batch, DDP (torchrun, 2 gloo ranks),
checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from synthct.training.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]
SMOKE = TrainConfig(epochs=2, iterations_per_epoch=2, val_iterations_per_epoch=1)


def _trainer(dataset: str, dirs: dict[str, Path], fold: int, config: TrainConfig = SMOKE,
             plans_name: str = "synthctUNetPlans"):
    from synthct.preprocessing.plans import load_plans
    from synthct.training.run import build_trainer

    base = dirs["preprocessed"] / dataset
    plans = load_plans(base, plans_name)
    dataset_json = json.loads((base / "dataset.json").read_text())
    return build_trainer(plans, dataset_json, fold, config, device=torch.device("cpu"))


@pytest.mark.parametrize(("optimizer", "lr", "kind"),
                         [("sgd", 1e-2, torch.optim.SGD), ("adamw", 1e-3, torch.optim.AdamW)])
def test_loss_falls_on_a_fixed_batch(planned_dataset: str, nnunet_env: dict[str, Path], optimizer: str, lr: float,
                                     kind: type) -> None:
    torch.manual_seed(0)
    np.random.seed(0)
    trainer = _trainer(planned_dataset, nnunet_env, 2, SMOKE.updated(optimizer=optimizer, initial_lr=lr))
    trainer.initialize()
    assert type(trainer.optimizer) is kind and trainer.optimizer.param_groups[0]["lr"] == lr
    trainer.dataloader_train, trainer.dataloader_val = trainer.get_dataloaders()
    batch = next(trainer.dataloader_train)
    assert batch["data"].shape == (2, 1, 16, 32, 32) and batch["target"].shape == (2, 1, 16, 32, 32)
    assert batch["seg"].dtype == torch.int16
    losses = [trainer.train_step(batch)["loss"] for _ in range(25)]
    assert np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < 0.8 * losses[0], losses
    out = trainer.validation_step(batch)
    assert out["n_body"] == int((batch["seg"] == 1).sum()) and out["abs_error_hu"] > 0


@pytest.mark.filterwarnings("ignore:torch.cuda.amp.GradScaler is enabled, but CUDA is not available")
def test_torchrun_two_gloo_ranks_train_one_fold(planned_dataset: str, nnunet_env: dict[str, Path]) -> None:
    """`torchrun --nproc_per_node 2 ... synthct train` on the CPU: both ranks join a gloo group, DDP steps, the
    losses and validation MAE are gathered over the ranks and rank 0 writes the checkpoints.

    Run as a real torchrun job (the way users start it), not in-process: an in-process world-size-1 gloo group hung
    CI for 80 min once; a child process has a hard timeout and fails with what it printed."""
    results = nnunet_env["results"].parent / "results_ddp"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
         "synthct.cli.main", "train", planned_dataset, "3", "--plans", "synthctUNetPlans", "--epochs", "1",
         "--iterations", "2", "--val-iterations", "1", "--no-validation", "--device", "cpu",
         "--preprocessed", str(nnunet_env["preprocessed"]), "--results", str(results)],
        capture_output=True, text=True, timeout=480, env=env, cwd=str(results.parent),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    for rank in (0, 1):
        assert f"joined DDP group: rank {rank} of 2 on cpu" in proc.stderr, proc.stderr[-4000:]
    fold = results / planned_dataset / "SynthCTTrainerL1__synthctUNetPlans__3d_fullres" / "fold_3"
    checkpoint = torch.load(fold / "checkpoint_final.pth", weights_only=False)
    logged = checkpoint["logging"]
    assert checkpoint["current_epoch"] == 1 and len(logged["train_losses"]) == 1
    assert np.isfinite(logged["train_losses"][0]) and logged["mean_fg_dice"][0] < 0  # −MAE in HU over both ranks
    assert not any(k.startswith("module.") for k in checkpoint["network_weights"])  # the plain network's weights


def test_checkpoints_load_with_weights_only_and_log_mae(planned_dataset: str, nnunet_env: dict[str, Path]) -> None:
    from synthct.network.checkpoint import read_nnunet_checkpoint

    trainer = _trainer(planned_dataset, nnunet_env, 4, TrainConfig(epochs=1, iterations_per_epoch=1,
                                                                 val_iterations_per_epoch=1))
    trainer.run_training()
    fold = Path(trainer.output_folder)
    assert {p.name for p in fold.glob("checkpoint_*.pth")} == {"checkpoint_best.pth", "checkpoint_final.pth"}
    checkpoint = read_nnunet_checkpoint(fold / "checkpoint_final.pth")  # what `synthct export` does
    assert checkpoint["trainer_name"] == "SynthCTTrainerL1" and checkpoint["current_epoch"] == 1
    assert checkpoint["inference_allowed_mirroring_axes"] is None  # paper preset: no mirroring
    logs = checkpoint["logging"]
    assert logs["mean_fg_dice"][0] < 0 and logs["ema_fg_dice"][0] == logs["mean_fg_dice"][0]
    assert checkpoint["_best_ema"] == logs["ema_fg_dice"][0]
    assert json.loads((fold / "train_config.json").read_text())["epochs"] == 1
    assert (fold / "progress.png").is_file()
    plans = json.loads((fold.parent / "plans.json").read_text())
    assert plans["synthct"]["train_config"]["iterations_per_epoch"] == 1
