"""Explicit trainer registry: name → class. Nothing is discovered by scanning modules (nnU-Net's recursive trainer
search imports torchvision, which is unusable beside a CPU torch)."""

from __future__ import annotations

from synthct.training.afp_trainer import SynthCTTrainerAFP
from synthct.training.trainer import SynthCTTrainerL1

TRAINERS: dict[str, type[SynthCTTrainerL1]] = {"l1": SynthCTTrainerL1, "afp": SynthCTTrainerAFP}


def get_trainer(name: str) -> type[SynthCTTrainerL1]:
    """The trainer class registered as ``name``. Raises KeyError listing the known names."""
    try:
        return TRAINERS[name]
    except KeyError:
        raise KeyError(f"unknown trainer {name!r}; known: {sorted(TRAINERS)}") from None
