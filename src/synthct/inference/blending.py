"""Weight maps for blending overlapping tiles, always float32 and never zero (no division by zero in the stitch)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

BLEND_MODES = ("mean", "gaussian")


@lru_cache(maxsize=8)
def _gaussian_numpy(tile_shape: tuple[int, ...], sigma_scale: float) -> np.ndarray:
    impulse = np.zeros(tile_shape, dtype=np.float64)
    impulse[tuple(t // 2 for t in tile_shape)] = 1.0
    g = gaussian_filter(impulse, [t * sigma_scale for t in tile_shape], mode="constant", cval=0.0)
    g /= g.max()
    g = g.astype(np.float32)
    g[g == 0] = g[g > 0].min()  # never zero: every voxel of a tile carries weight
    return g


@lru_cache(maxsize=8)
def weight_map(
    tile_shape: tuple[int, ...], mode: str, sigma_scale: float, device: torch.device
) -> torch.Tensor | None:
    """Tile weight map, shape ``tile_shape`` float32 on ``device``; ``None`` for mean blending (weight 1 everywhere).

    Args:
        tile_shape: (Z, Y, X) tile size in voxels.
        mode: "mean" or "gaussian" (nnU-Net's Gaussian: σ = ``sigma_scale`` · tile size, peak 1).
        sigma_scale: σ as a fraction of the tile size (nnU-Net: 1/8).
        device: where the map lives.
    """
    if mode not in BLEND_MODES:
        raise ValueError(f"blend mode must be one of {BLEND_MODES}, got {mode!r}")
    if mode == "mean":
        return None
    return torch.from_numpy(_gaussian_numpy(tuple(tile_shape), float(sigma_scale))).to(device)
