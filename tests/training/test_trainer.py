"""SynthCTTrainerL1 on the tiny porcine dataset: learning on a fixed batch, DDP (gloo, world size 1), checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import distributed as dist
from torch.nn.parallel import DistributedDataParallel

from synthct.training.config import TrainConfig

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
def test_trainer_builds_and_steps_inside_a_gloo_process_group(planned_dataset: str, nnunet_env: dict[str, Path],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")  # loopback device: no host-name lookup
    # in-memory rendezvous (no file or socket store), as torchrun's group would be for one process
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        trainer = _trainer(planned_dataset, nnunet_env, 3)
        assert trainer.is_ddp and trainer.device == torch.device("cpu") and trainer.grad_scaler is None
        trainer.on_train_start()
        assert isinstance(trainer.network, DistributedDataParallel)
        before = [p.detach().clone() for p in trainer.unwrapped_network().parameters()]
        trainer.on_epoch_start()
        trainer.on_train_epoch_start()
        out = trainer.train_step(next(trainer.dataloader_train))
        assert np.isfinite(out["loss"])
        after = list(trainer.unwrapped_network().parameters())
        assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
        trainer.on_train_epoch_end([out])  # all_gather over the group
        with torch.no_grad():
            trainer.on_validation_epoch_start()
            trainer.on_validation_epoch_end([trainer.validation_step(next(trainer.dataloader_val))])
        assert trainer.logger.get_value("mean_fg_dice", step=-1) < 0  # −MAE in HU
        assert trainer.logger.get_value("train_losses", step=-1) == pytest.approx(out["loss"])
    finally:
        dist.destroy_process_group()


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
