"""synthct.training: nnU-Net 2.8.1 plugin trainer (stage 1, L1), its dataloader, configuration and launcher.

``config`` and ``loss`` are pure (no nnunetv2); the other names load nnunetv2 on first access.
"""

from __future__ import annotations

from typing import Any

from synthct.training.config import TrainConfig

__all__ = ["TRAINERS", "SynthCTTrainerL1", "TrainConfig", "get_trainer", "train"]


def __getattr__(name: str) -> Any:
    """The nnunetv2-backed names, imported on first access (literal imports, so the layer test reads them)."""
    if name == "SynthCTTrainerL1":
        from synthct.training.trainer import SynthCTTrainerL1

        return SynthCTTrainerL1
    if name in ("TRAINERS", "get_trainer"):
        from synthct.training import registry

        return getattr(registry, name)
    if name == "train":
        from synthct.training.run import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
