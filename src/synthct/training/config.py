"""Training hyper-parameters in one dataclass, stored with the model (plans.json ``synthct.train_config`` and
``fold_k/train_config.json``), instead of one trainer class per setting."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from synthct.paths import SETTINGS_ENV, settings

#: Environment variable with TrainConfig fields (a JSON object, or the path of a JSON file) that override the plans'
#: ``synthct.train_config``; the way to set hyper-parameters for stock ``nnUNetv2_train`` (synthct.training.nnunet_ext).
TRAIN_CONFIG_ENV = SETTINGS_ENV["train_config"]
AUGMENTATIONS = ("paper", "mild", "cbct-drift")
OPTIMIZERS = ("sgd", "adamw")
#: ``compile`` choices: "stock" (nnU-Net's rule: ``nnUNet_compile``, on by default on CUDA, never on the CPU), "off",
#: or a ``torch.compile`` mode (on any device).
COMPILE_CHOICES = ("stock", "off", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class AFPConfig:
    """The AFP fine-tune's own settings (``SynthCTTrainerAFP``, stage 2), carried by :attr:`TrainConfig.afp`.

    In JSON (plans.json ``synthct.train_config``, ``fold_k/train_config.json``) they stay flat keys of the train config.

    Attributes:
        afp_extractor: results folder of the frozen extractor.
        afp_fold: fold of the extractor checkpoint (int or "all").
        afp_checkpoint: extractor checkpoint, "final" or "best".
        afp_weight: weight of the AFP term.
        l1_weight: weight λ_L1 of the masked L1 term (L = λ_L1·L1 + w·AFP).
        afp_masked: AFP on the body only (outside-body voxels set to air in both images).
        afp_feature_norm: None, "instance" or "channel" normalisation of the feature maps.
        afp_extractor_init: "trained" (the extractor's checkpoint) or "random" (same architecture, seeded random
            weights: the control of the AFP experiment).
    """

    afp_extractor: str
    afp_fold: int | str = 0
    afp_checkpoint: str = "final"
    afp_weight: float = 1.0
    l1_weight: float = 5.0
    afp_masked: bool = False
    afp_feature_norm: str | None = None
    afp_extractor_init: str = "trained"

    def __post_init__(self) -> None:
        if not self.afp_extractor:
            raise ValueError(f"afp_extractor must name the extractor results folder, got {self.afp_extractor!r}")
        if self.afp_weight < 0 or self.l1_weight < 0:
            raise ValueError(f"afp_weight and l1_weight must be >= 0, got {self.afp_weight}, {self.l1_weight}")
        if self.afp_checkpoint not in ("final", "best"):
            raise ValueError(f"afp_checkpoint must be 'final' or 'best', got {self.afp_checkpoint!r}")
        if self.afp_extractor_init not in ("trained", "random"):
            raise ValueError(f"afp_extractor_init must be 'trained' or 'random', got {self.afp_extractor_init!r}")
        if self.afp_feature_norm not in (None, "instance", "channel"):
            raise ValueError(f"afp_feature_norm must be None, 'instance' or 'channel', got {self.afp_feature_norm!r}")


#: The flat train_config keys that belong to :class:`AFPConfig`.
AFP_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(AFPConfig))


@dataclass(frozen=True)
class TrainConfig:
    """Stage-1 (L1) training settings; defaults reproduce the paper (arXiv 2509.22394) on stock nnU-Net schedules.

    Attributes:
        epochs: number of epochs (paper: 1000 or 1500).
        iterations_per_epoch: training iterations per epoch (nnU-Net: 250).
        val_iterations_per_epoch: validation iterations per epoch (nnU-Net: 50), patch-wise, for the EMA MAE.
        initial_lr: initial learning rate (nnU-Net's SGD: 1e-2), decayed by PolyLR (exponent 0.9).
        weight_decay: weight decay (nnU-Net: 3e-5).
        optimizer: "sgd" (nnU-Net's: momentum 0.99, Nesterov; the paper) or "adamw" (AdamW with AMSGrad, as stock
            ``nnUNetTrainerAdam``; use a smaller ``initial_lr``, e.g. 1e-3).
        augmentation: "paper" (none: random patches only), "mild" (spatial on all, intensity on the input only) or
            "cbct-drift" (CBCT calibration drift in HU on the input only: synthct.training.augmentation_drift).
        mirror_lr: with "mild", also mirror left-right (allows mirroring TTA at inference).
        background_weight: L1 weight of valid voxels outside the body mask (1 = plain L1 over every valid voxel).
        oversample_foreground_percent: share of patches centred in the body (nnU-Net: 0.33).
        save_every: epochs between ``checkpoint_latest.pth`` writes.
        val_tile_step: sliding-window step of the final validation (paper: 0.3).
        afp: the AFP fine-tune's settings (:class:`AFPConfig`); None for an L1 run.
        init_checkpoint: checkpoint (stage-1 ``.pth`` or an exported ``.safetensors``) whose weights initialise the
            run (strict, output layer included): the AFP fine-tune (required there), or an L1 fine-tune (e.g. with
            ``cbct-drift``); None starts from nnU-Net's random initialisation.
        channels_last: opt-in: network and input batches in the channels-last 3-D memory format (not yet measured
            faster on a GPU).
        compile: "stock" (default: stock nnU-Net's ``nnUNet_compile`` rule), "off", or a ``torch.compile`` mode
            forced on any device (opt-in; see :data:`COMPILE_CHOICES`).
        seed: seeds Python, numpy and torch when training starts (same patches and draws in every run); None
            (default, as stock nnU-Net) leaves them unseeded.
    """

    epochs: int = 1000
    iterations_per_epoch: int = 250
    val_iterations_per_epoch: int = 50
    initial_lr: float = 1e-2
    weight_decay: float = 3e-5
    optimizer: str = "sgd"
    augmentation: str = "paper"
    mirror_lr: bool = False
    background_weight: float = 1.0
    oversample_foreground_percent: float = 0.33
    save_every: int = 50
    val_tile_step: float = 0.3
    afp: AFPConfig | None = None
    init_checkpoint: str | None = None
    channels_last: bool = False
    compile: str = "stock"
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "iterations_per_epoch", "val_iterations_per_epoch", "save_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(f"augmentation must be one of {AUGMENTATIONS}, got {self.augmentation!r}")
        if self.mirror_lr and self.augmentation != "mild":
            raise ValueError(f"mirror_lr needs augmentation 'mild' (the {self.augmentation!r} preset has no "
                             f"mirroring)")
        if not self.initial_lr > 0:
            raise ValueError(f"initial_lr must be positive, got {self.initial_lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.background_weight <= 1:
            raise ValueError(f"background_weight must be in [0, 1], got {self.background_weight}")
        if not 0 <= self.oversample_foreground_percent <= 1:
            raise ValueError(f"oversample_foreground_percent must be in [0, 1], got "
                             f"{self.oversample_foreground_percent}")
        if not 0 < self.val_tile_step <= 1:
            raise ValueError(f"val_tile_step must be in (0, 1], got {self.val_tile_step}")
        if self.seed is not None and (not isinstance(self.seed, int) or self.seed < 0):
            raise ValueError(f"seed must be a non-negative int or None, got {self.seed!r}")
        if self.compile not in COMPILE_CHOICES:
            raise ValueError(f"compile must be one of {COMPILE_CHOICES}, got {self.compile!r}")

    def to_json(self) -> dict[str, Any]:
        """The fields as flat JSON: the AFP settings (an AFP run only) as keys of their own, and an unseeded run
        without ``seed``."""
        data = asdict(self)
        afp = data.pop("afp")
        for optional in ("seed", "init_checkpoint"):
            if data[optional] is None:
                del data[optional]
        return {**data, **(afp or {})}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        """The config of flat JSON (:meth:`to_json`); AFP keys at their defaults without ``afp_extractor`` (older L1
        configs) are ignored, any other AFP key needs ``afp_extractor``."""
        known = {f.name for f in fields(cls) if f.name != "afp"} | set(AFP_FIELDS)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown train_config keys {unknown}; known: {sorted(known)}")
        own = {k: v for k, v in data.items() if k not in AFP_FIELDS}
        return cls(**own, afp=_afp_of({k: v for k, v in data.items() if k in AFP_FIELDS}))

    def updated(self, **changes: Any) -> TrainConfig:
        """A copy with the given fields changed (``None`` values are ignored); AFP keys update :attr:`afp` (and
        create it when ``afp_extractor`` is among them)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        afp = {k: changes.pop(k) for k in list(changes) if k in AFP_FIELDS}
        if afp:
            current = {} if self.afp is None else asdict(self.afp)
            changes["afp"] = _afp_of({**current, **afp})
        return replace(self, **changes)


def _afp_of(values: dict[str, Any]) -> AFPConfig | None:
    """The AFPConfig of flat AFP keys; None when there are none, or only defaults without ``afp_extractor``."""
    if "afp_extractor" not in values or values["afp_extractor"] is None:
        defaults = {f.name: f.default for f in fields(AFPConfig)}
        extra = {k: v for k, v in values.items() if k != "afp_extractor" and v != defaults[k]}
        if extra:
            raise ValueError(f"AFP settings {sorted(extra)} need afp_extractor (the extractor results folder)")
        return None
    return AFPConfig(**values)


def with_env_overrides(config: TrainConfig, env: Mapping[str, str] | None = None
                       ) -> tuple[TrainConfig, dict[str, Any]]:
    """``config`` with the fields in ``$SYNTHCT_TRAIN_CONFIG`` replaced; returns (config, the overrides applied).

    The variable holds a JSON object (``'{"epochs": 1, "iterations_per_epoch": 1}'``) or the path of a JSON file with
    one. Raises ValueError naming the variable on bad JSON, unknown keys or invalid values.
    """
    raw = (settings(env).train_config or "").strip()
    if not raw:
        return config, {}
    try:
        text = raw if raw.startswith("{") else Path(raw).read_text()
        overrides = json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{TRAIN_CONFIG_ENV}={raw!r} is neither a JSON object nor a readable JSON file ({exc})") \
            from None
    if not isinstance(overrides, dict):
        raise ValueError(f"{TRAIN_CONFIG_ENV} must hold a JSON object, got {overrides!r}")
    try:
        return TrainConfig.from_json({**config.to_json(), **overrides}), overrides
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{TRAIN_CONFIG_ENV}: {exc}") from None
