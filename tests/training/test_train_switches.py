"""Opt-in training-step switches of SynthCTTrainerL1 (TrainConfig.channels_last / compile): one step on the same
batch from the same initial weights matches the stock-layout eager step."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from synthct.training.config import COMPILE_CHOICES, TrainConfig

SMOKE = TrainConfig(epochs=2, iterations_per_epoch=2, val_iterations_per_epoch=1)
COMPILE_REASON = ("torch.compile on this 2-core CPU took 64 s for one tiny inference forward (measured); a training "
                  "step compiles forward and backward; set SYNTHCT_TEST_COMPILE=1 to run it")


def _trainer(dataset: str, dirs: dict[str, Path], config: TrainConfig):
    from synthct.preprocessing.plans import load_plans
    from synthct.training.run import build_trainer

    base = dirs["preprocessed"] / dataset
    plans = load_plans(base, "synthctResUNetPlans")
    dataset_json = json.loads((base / "dataset.json").read_text())
    trainer = build_trainer(plans, dataset_json, 4, config, device=torch.device("cpu"))
    torch.manual_seed(0)
    trainer.initialize()
    return trainer


def _step(dataset: str, dirs: dict[str, Path], config: TrainConfig, batch: dict | None = None):
    trainer = _trainer(dataset, dirs, config)
    if batch is None:
        np.random.seed(0)
        trainer.dataloader_train, trainer.dataloader_val = trainer.get_dataloaders()
        batch = next(trainer.dataloader_train)
    out = trainer.train_step(batch)
    params = [p.detach().clone() for p in trainer.unwrapped_network().parameters()]
    return trainer, batch, out["loss"], params


def _compare(dataset: str, dirs: dict[str, Path], config: TrainConfig) -> tuple[float, float, object]:
    """(|loss difference|, max |parameter difference| after the step, trainer) against the eager stock-layout step."""
    _, batch, loss, params = _step(dataset, dirs, SMOKE)
    trainer, _, loss2, params2 = _step(dataset, dirs, config, batch)
    moved = max(float((a - b).abs().max()) for a, b in zip(params, params2, strict=True))
    return abs(loss - loss2), moved, trainer


def test_channels_last_step_matches_the_eager_step(planned_dataset: str, nnunet_env: dict[str, Path]) -> None:
    dloss, dparam, trainer = _compare(planned_dataset, nnunet_env, SMOKE.updated(channels_last=True))
    conv = next(m for m in trainer.unwrapped_network().modules()
                if isinstance(m, torch.nn.Conv3d) and m.weight.shape[-1] == 3)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert dloss <= 1e-5 and dparam <= 1e-5, (dloss, dparam)


def test_compile_choice_follows_stock_or_is_forced(planned_dataset: str, nnunet_env: dict[str, Path]) -> None:
    trainer = _trainer(planned_dataset, nnunet_env, SMOKE)
    assert trainer.compile_mode() is None  # stock: never on the CPU
    trainer.train_config = SMOKE.updated(compile="max-autotune-no-cudagraphs")
    assert trainer.compile_mode() == "max-autotune-no-cudagraphs"
    trainer.train_config = SMOKE.updated(compile="off")
    assert trainer.compile_mode() is None
    assert "stock" in COMPILE_CHOICES and TrainConfig().compile == "stock" and not TrainConfig().channels_last
    with pytest.raises(ValueError, match="compile must be one of"):
        TrainConfig(compile="fast")


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("SYNTHCT_TEST_COMPILE") != "1", reason=COMPILE_REASON)
def test_compiled_step_matches_the_eager_step(planned_dataset: str, nnunet_env: dict[str, Path]) -> None:
    dloss, dparam, trainer = _compare(planned_dataset, nnunet_env, SMOKE.updated(compile="default"))
    assert isinstance(trainer.network, torch._dynamo.OptimizedModule)
    assert dloss <= 1e-4 and dparam <= 1e-4, (dloss, dparam)
