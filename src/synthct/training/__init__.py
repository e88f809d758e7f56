"""synthct.training: nnU-Net 2.8.1 plugin trainer (stage 1, L1), its dataloader, configuration and launcher.

``config`` and ``loss`` are pure (no nnunetv2); the other names load nnunetv2 on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

from synthct.training.config import TrainConfig

_LAZY = {"SynthCTTrainerL1": "synthct.training.trainer", "TRAINERS": "synthct.training.registry",
         "get_trainer": "synthct.training.registry", "train": "synthct.training.run"}

__all__ = ["TRAINERS", "SynthCTTrainerL1", "TrainConfig", "get_trainer", "train"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
