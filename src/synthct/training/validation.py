"""Final validation of a trained fold: predict each held-out case with the plugin sliding window, write the sCT in HU
on the case's original grid, and score MAE / PSNR / MS-SSIM inside the body against the stored HU target.

Pure functions of (network, preprocessed case); the trainer only loops and aggregates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthct.contracts.normalization import TargetNormalization
from synthct.inference.sliding_window import SlidingWindowSettings, sliding_window_predict
from synthct.io.image import Geometry, write_image_atomic
from synthct.metrics.image import mae, ms_ssim, psnr

AIR_HU = -1000.0


@dataclass(frozen=True)
class CaseScore:
    """MAE (HU), PSNR (dB) and MS-SSIM of one validation case, inside the body mask."""

    case: str
    mae_hu: float
    psnr_db: float
    ms_ssim: float


def window_settings(patch_size: tuple[int, int, int], step: float, target: TargetNormalization,
                    mirror_axes: tuple[int, ...] = ()) -> SlidingWindowSettings:
    """Inference settings of the final validation: mean blending, fp32 stitching, tiles outside the body skipped."""
    return SlidingWindowSettings(tile_size=patch_size, step=step, blend="mean", mirror_axes=mirror_axes,
                                 fill_value=float(target.to_z(np.array(AIR_HU))), progress=False)


def predict_case_hu(network: nn.Module, inputs: np.ndarray, body: np.ndarray, settings: SlidingWindowSettings,
                    target: TargetNormalization, device: torch.device) -> np.ndarray:
    """sCT of one preprocessed case.

    Args:
        network: trained network in eval mode on ``device``.
        inputs: (C_in, Z, Y, X) float32 normalised input channels.
        body: (Z, Y, X) bool body mask.
        settings: sliding-window settings.
        target: target normalisation (z → HU).
        device: compute device.

    Returns:
        (Z, Y, X) float32 HU clipped to the target range, -1000 HU outside the body.
    """
    z = sliding_window_predict([network], torch.from_numpy(np.ascontiguousarray(inputs)), settings, device,
                               mask=body)
    hu = target.to_hu(z[0].numpy())
    hu[~body] = AIR_HU
    return hu


def score_case(case: str, reference_hu: np.ndarray, prediction_hu: np.ndarray, body: np.ndarray) -> CaseScore:
    """MAE, PSNR and MS-SSIM inside ``body`` as the SynthRAD2025 evaluation computes them (``synthct.metrics``)."""
    return CaseScore(case, float(mae(reference_hu, prediction_hu, mask=body)),
                     float(psnr(reference_hu, prediction_hu, mask=body)),
                     float(ms_ssim(reference_hu, prediction_hu, mask=body)))


def to_original_grid(hu: np.ndarray, properties: dict[str, Any], transpose_backward: list[int]) -> np.ndarray:
    """Undo the preprocessing geometry of a (Z, Y, X) prediction: resample to the shape before resampling
    (trilinear), transpose back. No crop is undone (the plugin preprocessor does not crop)."""
    shape = tuple(int(s) for s in properties["shape_after_cropping_and_before_resampling"])
    if hu.shape != shape:
        t = torch.from_numpy(np.ascontiguousarray(hu))[None, None]
        hu = F.interpolate(t, size=shape, mode="trilinear", align_corners=False)[0, 0].numpy()
    return np.ascontiguousarray(hu.transpose(transpose_backward)).astype(np.float32)


def write_case(hu: np.ndarray, properties: dict[str, Any], path: Path) -> Path:
    """Write a (Z, Y, X) HU array with the case's original geometry (``properties['sitk_stuff']``)."""
    stuff = properties["sitk_stuff"]
    geometry = Geometry(size=tuple(reversed(hu.shape)), spacing=tuple(stuff["spacing"]),
                        origin=tuple(stuff["origin"]), direction=tuple(stuff["direction"]))
    return write_image_atomic(hu, geometry, path)


def write_summary(scores: list[CaseScore], path: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """``summary.json``: per-case and mean MAE / PSNR / MS-SSIM; returns the written dictionary."""
    keys = ("mae_hu", "psnr_db", "ms_ssim")
    summary = {
        "metrics": "MAE [HU], PSNR [dB], MS-SSIM inside the body mask, as the SynthRAD2025 evaluation "
                   "(synthct.metrics.image)",
        **extra,
        "mean": {k: float(np.mean([getattr(s, k) for s in scores])) if scores else None for k in keys},
        "cases": {s.case: {k: getattr(s, k) for k in keys} for s in sorted(scores, key=lambda s: s.case)},
    }
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary
