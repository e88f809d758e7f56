"""Intensity normalisation of network inputs and of the CT target, shared by training and inference.

Pure numpy (no nnunetv2): the training preprocessor and the inference predictor call the same functions, so both
normalise identically by construction.

Schemes (the paper's):
* MR input, ``zscore_mask``: per-case z-score with mean and std taken **inside the body mask** (whole image if the mask
  is empty or absent); outside-mask voxels get the same affine map.
* CBCT input, ``clip_zscore``: clip to a fixed range, then z-score with **dataset-level** mean/std (from the model).
* CBCT input, option ``robust_zscore_mask`` (``synthct plan --cbct-normalization per-case``; not the paper's): clip,
  then a per-case robust z-score (median and IQR inside the body mask), :mod:`synthct.contracts.cbct_normalization`.
* CT target: clip to [-1024, 3071] HU, z-score with dataset mean/std; inverted exactly by
  :meth:`TargetNormalization.to_hu`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from synthct import HU_MAX, HU_MIN
from synthct.contracts.cbct_normalization import PER_CASE_SCHEME, robust_zscore

INPUT_SCHEMES = ("zscore_mask", "clip_zscore", PER_CASE_SCHEME)
_STD_FLOOR = 1e-8


@dataclass(frozen=True)
class InputNormalization:
    """How a network input channel is normalised.

    Attributes:
        scheme: "zscore_mask" (per case, MR), "clip_zscore" (dataset statistics, CBCT) or "robust_zscore_mask"
            (clip, then per-case median/IQR inside the body, CBCT option).
        clip: (low, high) clip range in input units, for "clip_zscore" and "robust_zscore_mask".
        mean: dataset mean after clipping, for "clip_zscore" (for "robust_zscore_mask", optional: the dataset's
            reference, used only to initialise an input skip).
        std: dataset std after clipping, for "clip_zscore" (> 0; optional reference for "robust_zscore_mask").
    """

    scheme: str
    clip: tuple[float, float] | None = None
    mean: float | None = None
    std: float | None = None

    def __post_init__(self) -> None:
        if self.scheme not in INPUT_SCHEMES:
            raise ValueError(f"input normalisation scheme must be one of {INPUT_SCHEMES}, got {self.scheme!r}")
        if self.scheme == "clip_zscore":
            if self.clip is None or self.mean is None or self.std is None:
                raise ValueError(f"clip_zscore needs clip, mean and std, got clip={self.clip} mean={self.mean} "
                                 f"std={self.std}")
            if not self.clip[0] < self.clip[1]:
                raise ValueError(f"clip range must be increasing, got {self.clip}")
            if not self.std > 0:
                raise ValueError(f"std must be positive, got {self.std}")
        if self.scheme == PER_CASE_SCHEME:
            if self.clip is None or not self.clip[0] < self.clip[1]:
                raise ValueError(f"{PER_CASE_SCHEME} needs an increasing clip range, got {self.clip}")

    def apply(self, image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Normalise ``image`` (Z, Y, X), any real dtype → float32. ``mask`` (Z, Y, X) bool is used by zscore_mask."""
        if self.scheme == "zscore_mask":
            return zscore_in_mask(image, mask)
        if self.scheme == PER_CASE_SCHEME:
            assert self.clip is not None
            return robust_zscore(image, mask, self.clip)[0]
        assert self.clip is not None and self.mean is not None and self.std is not None
        return ((np.clip(image.astype(np.float64), *self.clip) - self.mean) / self.std).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InputNormalization:
        clip = data.get("clip")
        return cls(scheme=data["scheme"], clip=None if clip is None else (float(clip[0]), float(clip[1])),
                   mean=data.get("mean"), std=data.get("std"))


def zscore_in_mask(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Per-case z-score of ``image`` (Z, Y, X) with statistics inside ``mask`` (bool, same shape); float32 out.

    Statistics are computed in float64. An absent or empty mask uses the whole image; std is floored at 1e-8.
    Finite values whose sum or differences overflow float64 (magnitudes near 1.8e308) are first divided by their
    largest magnitude (the z-score does not change under scaling), so finite input always gives finite output.
    """
    values = image.astype(np.float64)
    inside = values[mask] if mask is not None and mask.any() else values.ravel()
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = float(inside.mean()), float(inside.std())
        z = (values - mean) / max(std, _STD_FLOOR)
    if np.isfinite(mean) and np.isfinite(std) and np.all(np.isfinite(z)):
        with np.errstate(over="ignore"):  # |z| beyond float32 becomes ±inf; the predictor bounds it
            return z.astype(np.float32)
    scale = float(np.abs(values).max())
    if not np.isfinite(scale):
        raise ValueError(f"image has NaN or infinite values; cannot z-score (max |value| = {scale})")
    values /= scale
    inside = values[mask] if mask is not None and mask.any() else values.ravel()
    mean, std = float(inside.mean()), float(inside.std())
    return ((values - mean) / max(std, _STD_FLOOR / scale)).astype(np.float32)


@dataclass(frozen=True)
class TargetNormalization:
    """CT target normalisation: z = (clip(HU, low, high) − mean) / std, inverted by :meth:`to_hu`.

    Attributes:
        mean: dataset mean of the clipped CT, HU.
        std: dataset std of the clipped CT, HU (> 0).
        clip: HU clip range, default the challenge's [-1024, 3071].
    """

    mean: float
    std: float
    clip: tuple[float, float] = (HU_MIN, HU_MAX)

    def __post_init__(self) -> None:
        if not self.std > 0:
            raise ValueError(f"target std must be positive, got {self.std}")
        if not self.clip[0] < self.clip[1]:
            raise ValueError(f"target clip range must be increasing, got {self.clip}")

    def to_z(self, hu: np.ndarray) -> np.ndarray:
        """HU (any shape) → normalised float32."""
        return ((np.clip(hu.astype(np.float64), *self.clip) - self.mean) / self.std).astype(np.float32)

    def to_hu(self, z: np.ndarray) -> np.ndarray:
        """Normalised → HU float32, clipped to ``clip``."""
        return np.clip(z.astype(np.float64) * self.std + self.mean, *self.clip).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {"clip": list(self.clip), "mean": self.mean, "std": self.std}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TargetNormalization:
        clip = data.get("clip", (HU_MIN, HU_MAX))
        return cls(mean=float(data["mean"]), std=float(data["std"]), clip=(float(clip[0]), float(clip[1])))
