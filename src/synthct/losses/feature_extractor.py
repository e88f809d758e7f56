"""A frozen nnU-Net segmentation network used as anatomical feature extractor (AFP loss).

Built from any nnU-Net results folder (``plans.json``, ``dataset.json``, ``fold_k/checkpoint_*.pth`` or, for a
bundled extractor written by :func:`export_extractor`, ``.safetensors``) — a compact
extractor trained with ``synthct extractor train`` or a TotalSegmentator model folder such as the 3 mm Dataset297:

* the architecture comes from the folder's plans (explicit class/op tables, no discovery), with as many outputs as
  its dataset has labels and no deep supervision;
* weights are loaded **strictly** from ``torch.load(weights_only=True)``; any mismatch raises ValueError;
* the module is frozen (``requires_grad_(False)``) and stays in eval mode even when a trainer calls ``.train()``;
  its weights stay float32 (autocast, never ``.half()``);
* its own CT normalisation (clip to the plans' foreground p0.5/p99.5, z-score with their mean/std) and spacing are
  read from the plans, so inputs can be mapped from HU exactly as the extractor saw CTs in training.

Feature taps are forward hooks on ``encoder.stages[i]`` and ``decoder.stages[j]``. The default (the reference fork's
layers 0-8 for a 6-stage net) is every encoder stage except the last two, plus every decoder stage.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from synthct.network.build import build_network
from synthct.network.checkpoint import load_state_dict, read_nnunet_checkpoint
from synthct.typing import PathLike

LOG = logging.getLogger(__name__)

#: A feature tap: ("encoder", stage index) or ("decoder", stage index).
Tap = tuple[str, int]


def default_taps(n_stages: int) -> list[Tap]:
    """Encoder stages 0..n-3 and decoder stages 0..n-2 (9 taps for a 6-stage U-Net)."""
    return [("encoder", i) for i in range(max(n_stages - 2, 0))] + [("decoder", j) for j in range(n_stages - 1)]


class FrozenFeatureNet(nn.Module):
    """Frozen segmentation network with feature hooks.

    Args:
        network: an nnU-Net-style U-Net (``encoder.stages``, ``decoder.stages``, ``encoder.strides``).
        ct_clip: (low, high) HU clip of the extractor's CT normalisation.
        ct_mean: mean (HU) of its z-score.
        ct_std: std (HU) of its z-score.
        spacing: (Z, Y, X) mm the extractor was trained at.
        taps: feature taps; default :func:`default_taps`.
    """

    def __init__(self, network: nn.Module, ct_clip: tuple[float, float], ct_mean: float, ct_std: float,
                 spacing: Sequence[float], taps: Sequence[Tap] | None = None) -> None:
        super().__init__()
        self.network = network.eval().requires_grad_(False)
        self.ct_clip = (float(ct_clip[0]), float(ct_clip[1]))
        self.ct_mean, self.ct_std = float(ct_mean), float(ct_std)
        self.spacing = tuple(float(s) for s in spacing)
        unet: Any = network  # a dynamic_network_architectures U-Net: its encoder/decoder carry no type information
        n_stages = len(unet.encoder.stages)
        self.taps = list(taps) if taps is not None else default_taps(n_stages)
        self._captured: dict[int, torch.Tensor] = {}
        for index, (part, stage) in enumerate(self.taps):
            stages = unet.encoder.stages if part == "encoder" else unet.decoder.stages if part == "decoder" else None
            if stages is None or not 0 <= stage < len(stages):
                raise ValueError(f"feature tap {(part, stage)} does not exist in a {n_stages}-stage network")
            stages[stage].register_forward_hook(self._hook(index))

    def _hook(self, index: int) -> Callable[[nn.Module, object, torch.Tensor], None]:
        def store(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
            self._captured[index] = output
        return store

    def train(self, mode: bool = True) -> FrozenFeatureNet:
        """Always eval: the extractor's normalisation statistics and dropout must not change in training."""
        return super().train(False)

    @property
    def stride_multiple(self) -> tuple[int, ...]:
        """Cumulative stride per axis (Z, Y, X): inputs are padded to a multiple of it."""
        unet: Any = self.network
        strides = [s if isinstance(s, Sequence) else [s] * 3 for s in unet.encoder.strides]
        return tuple(math.prod(int(s[a]) for s in strides) for a in range(3))

    def normalize_hu(self, hu: torch.Tensor) -> torch.Tensor:
        """HU → the extractor's normalised CT units (float32)."""
        return (hu.float().clamp(*self.ct_clip) - self.ct_mean) / self.ct_std

    @property
    def air_value(self) -> float:
        """-1024 HU in the extractor's normalised units (used for padding)."""
        return (max(-1024.0, self.ct_clip[0]) - self.ct_mean) / self.ct_std

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of ``x`` (B, 1, Z, Y, X) in the extractor's normalised units, one per tap, in tap order."""
        self._captured = {}
        self.network(x)
        features = [self._captured[i] for i in range(len(self.taps))]
        self._captured = {}
        return features


def _ct_normalization(plans: dict, configuration: str, path: Path) -> tuple[tuple[float, float], float, float]:
    config = plans["configurations"][configuration]
    schemes = config.get("normalization_schemes", ["CTNormalization"])
    if schemes[0] != "CTNormalization":
        raise ValueError(f"{path}: extractor channel 0 uses {schemes[0]!r}; a CT extractor with CTNormalization "
                         "is required")
    props = plans.get("foreground_intensity_properties_per_channel", {}).get("0")
    if not props:
        raise ValueError(f"{path}: plans.json lacks foreground_intensity_properties_per_channel['0']")
    return (float(props["percentile_00_5"]), float(props["percentile_99_5"])), float(props["mean"]), \
        float(props["std"])


#: How the extractor's weights are set: loaded from its checkpoint, or a seeded random initialisation of the same
#: architecture (the control that asks whether AFP needs anatomy or only deep features).
EXTRACTOR_INITS = ("trained", "random")
#: Seed of the random-initialisation control.
RANDOM_INIT_SEED = 0


def extractor_checkpoint(root: Path, fold: int | str, checkpoint: str) -> Path:
    """``fold_<fold>/checkpoint_<checkpoint>.pth`` (stock nnU-Net), else ``.safetensors`` (a bundled extractor, see
    :func:`export_extractor`); the ``.pth`` path when neither exists (for the error message)."""
    pth = root / f"fold_{fold}" / f"checkpoint_{checkpoint}.pth"
    bundled = pth.with_suffix(".safetensors")
    return bundled if not pth.is_file() and bundled.is_file() else pth


def _random_init(network: nn.Module, seed: int) -> None:
    """nnU-Net's He initialisation (negative slope 1e-2, zero biases) under a fixed seed."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        for module in network.modules():
            if isinstance(module, (nn.Conv3d, nn.Conv2d, nn.ConvTranspose3d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, a=1e-2)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
    finally:
        torch.random.set_rng_state(generator_state)


def load_feature_extractor(results_dir: PathLike, fold: int | str = 0, checkpoint: str = "final",
                           configuration: str = "3d_fullres", taps: Sequence[Tap] | None = None,
                           init: str = "trained") -> FrozenFeatureNet:
    """Build, strictly load and freeze the segmentation network of an nnU-Net results folder.

    Args:
        results_dir: ``plans.json``, ``dataset.json`` and ``fold_<fold>/checkpoint_<checkpoint>.pth`` (or
            ``.safetensors``).
        init: "trained" loads the checkpoint; "random" keeps the architecture and CT normalisation but draws the
            weights (:data:`RANDOM_INIT_SEED`), and needs no checkpoint.

    Raises:
        FileNotFoundError: plans.json, dataset.json or the checkpoint is missing (the message names it).
        ValueError: unknown architecture, non-CT normalisation, or weights that do not match the network.
    """
    if init not in EXTRACTOR_INITS:
        raise ValueError(f"extractor init must be one of {EXTRACTOR_INITS}, got {init!r}")
    root = Path(results_dir)
    files = [root / "plans.json", root / "dataset.json", extractor_checkpoint(root, fold, checkpoint)]
    for f in files[:2] if init == "random" else files:
        if not f.is_file():
            raise FileNotFoundError(f"feature extractor file not found: {f}")
    plans, dataset = json.loads(files[0].read_text()), json.loads(files[1].read_text())
    if configuration not in plans.get("configurations", {}):
        raise ValueError(f"{files[0]}: no configuration {configuration!r}")
    n_out = len(dataset["labels"])
    network = build_network(plans["configurations"][configuration]["architecture"], 1, n_out)
    if init == "random":
        _random_init(network, RANDOM_INIT_SEED)
    else:
        _load_weights(network, files[2])
    clip, mean, std = _ct_normalization(plans, configuration, files[0])
    spacing = plans["configurations"][configuration]["spacing"]
    LOG.info("feature extractor %s: %d classes, spacing %s mm, CT clip %s, %s weights", root, n_out, spacing, clip,
             init)
    return FrozenFeatureNet(network.float(), clip, mean, std, spacing, taps)


def _checkpoint_weights(path: Path) -> dict[str, torch.Tensor]:
    """The ``network_weights`` of a stock nnU-Net ``.pth`` checkpoint (ValueError naming the file if absent)."""
    state = read_nnunet_checkpoint(path).get("network_weights")
    if state is None:
        raise ValueError(f"{path} has no 'network_weights'")
    return state


def _load_weights(network: nn.Module, path: Path) -> None:
    state = load_state_dict(path) if path.suffix == ".safetensors" else _checkpoint_weights(path)
    state = {k.removeprefix("_orig_mod."): v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"extractor weights {path} do not match its plans: {str(exc)[:500]}") from None


def export_extractor(results_dir: PathLike, out_dir: PathLike, fold: int | str = "all", checkpoint: str = "final",
                     provenance: str = "") -> Path:
    """Write a compact, loadable copy of an extractor results folder: ``plans.json``, ``dataset.json``,
    ``fold_<fold>/checkpoint_<checkpoint>.safetensors`` (fp16; loaded back as float32) and ``PROVENANCE.md``.

    The copy is checked to load (:func:`load_feature_extractor`) before it replaces ``out_dir``; nothing is left
    half-written on failure. Returns ``out_dir``.
    """
    from synthct.io.staging import staged_folder
    from synthct.network.checkpoint import save_safetensors

    root, out = Path(results_dir), Path(out_dir)
    source = root / f"fold_{fold}" / f"checkpoint_{checkpoint}.pth"
    for f in (root / "plans.json", root / "dataset.json", source):
        if not f.is_file():
            raise FileNotFoundError(f"extractor file not found: {f}")
    state = _checkpoint_weights(source)
    with staged_folder(out, overwrite=True, what="extractor folder") as staging:
        for name in ("plans.json", "dataset.json"):
            shutil.copyfile(root / name, staging / name)
        save_safetensors(state, staging / f"fold_{fold}" / f"checkpoint_{checkpoint}.safetensors", half=True)
        if provenance:
            (staging / "PROVENANCE.md").write_text(provenance)
        load_feature_extractor(staging, fold, checkpoint)  # it must load before it is published
    return out
