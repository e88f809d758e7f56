"""Masked L1 on the normalised CT target (pure torch, no nnU-Net).

Masks come from the dataloader's segmentation channel: ``seg >= 0`` is a valid voxel (inside the image after padding
and spatial augmentation; -1 marks padding), ``seg == 1`` is the body.
"""

from __future__ import annotations

import torch
from torch import nn


def l1_weights(seg: torch.Tensor, background_weight: float = 1.0) -> torch.Tensor:
    """Per-voxel L1 weights from ``seg`` (B, 1, Z, Y, X) int: 1 in the body, ``background_weight`` on the other
    valid voxels, 0 where ``seg < 0``. float32, same shape."""
    valid = (seg >= 0).float()
    if background_weight == 1.0:
        return valid
    body = (seg == 1).float()
    return body + background_weight * (valid - body)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ w·|pred − target| / Σ w in float32, whatever the input dtypes.

    Args:
        pred: (B, 1, Z, Y, X) network output (normalised units; fp16 under autocast is upcast).
        target: (B, 1, Z, Y, X) normalised target.
        weights: (B, 1, Z, Y, X) non-negative voxel weights.

    Returns:
        A scalar; 0 (still attached to ``pred``) when every weight is 0.
    """
    if pred.shape != target.shape or pred.shape != weights.shape:
        raise ValueError(f"shapes differ: pred {tuple(pred.shape)}, target {tuple(target.shape)}, "
                         f"weights {tuple(weights.shape)}")
    diff = (pred.float() - target.float()).abs() * weights
    return diff.sum() / weights.sum().clamp_min(1.0)


class MaskedL1Loss(nn.Module):
    """L1 over valid voxels (optionally down-weighting the background) between prediction and normalised target."""

    def __init__(self, background_weight: float = 1.0) -> None:
        super().__init__()
        self.background_weight = float(background_weight)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        return masked_l1(pred, target, l1_weights(seg, self.background_weight))
