"""Imported by nnU-Net's external-trainer search as the top-level module ``synthct_trainers`` (see the package
docstring); re-exports synthct's trainer classes, nothing else."""

from synthct.training.afp_trainer import SynthCTTrainerAFP
from synthct.training.trainer import SynthCTTrainerL1

__all__ = ["SynthCTTrainerAFP", "SynthCTTrainerL1"]
