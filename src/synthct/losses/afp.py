"""Anatomical Feature Prioritized (AFP) loss: L1 between multi-layer features of a frozen segmentation network.

For a prediction ``ŷ`` and target ``y`` in the synthesis network's normalised CT units (B, 1, Z, Y, X):

1. map both to HU with the synthesis target normalisation (z·σ + μ);
2. set invalid voxels (padding, out of field of view) — and with ``masked=True`` voxels outside the body — to
   -1024 HU in both;
3. apply the extractor's own CT normalisation (clip + z-score from its plans);
4. resample to the extractor's spacing when the data spacing differs (trilinear);
5. pad to a multiple of the extractor's cumulative stride with its normalised air value;
6. AFP = Σ_l w_l · mean |φ_l(ŷ) − φ_l(y)|, target features computed without autograd.

Options: ``feature_norm="instance"`` (instance-normalise each map first) or ``"channel"`` (unit L2 norm over channels
per voxel). The extractor is injected; nothing is downloaded or looked up by name.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from synthct.contracts.normalization import TargetNormalization
from synthct.losses.feature_extractor import FrozenFeatureNet

FEATURE_NORMS = (None, "instance", "channel")


class AFPLoss(nn.Module):
    """AFP loss module (see the module docstring).

    Args:
        extractor: frozen feature network (:func:`~synthct.losses.feature_extractor.load_feature_extractor`).
        target_normalization: the synthesis model's CT normalisation (z ↔ HU).
        data_spacing: (Z, Y, X) mm of the synthesis patches; None = the extractor's spacing (no resampling).
        layer_weights: one weight per tap (default 1.0 each).
        masked: also replace outside-body voxels by air.
        feature_norm: None, "instance" or "channel".
    """

    def __init__(self, extractor: FrozenFeatureNet, target_normalization: TargetNormalization,
                 data_spacing: Sequence[float] | None = None, layer_weights: Sequence[float] | None = None,
                 masked: bool = False, feature_norm: str | None = None) -> None:
        super().__init__()
        if feature_norm not in FEATURE_NORMS:
            raise ValueError(f"feature_norm must be one of {FEATURE_NORMS}, got {feature_norm!r}")
        n_taps = len(extractor.taps)
        weights = [1.0] * n_taps if layer_weights is None else [float(w) for w in layer_weights]
        if len(weights) != n_taps:
            raise ValueError(f"{len(weights)} layer weights given for {n_taps} feature taps")
        self.extractor = extractor
        self.target_normalization = target_normalization
        self.layer_weights = weights
        self.masked = masked
        self.feature_norm = feature_norm
        spacing = extractor.spacing if data_spacing is None else tuple(float(s) for s in data_spacing)
        self.scale = tuple(d / e for d, e in zip(spacing, extractor.spacing, strict=True))

    def _prepare(self, z: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        """(B, 1, Z, Y, X) synthesis units → extractor input (resampled, padded), float32."""
        tn = self.target_normalization
        hu = z.float() * tn.std + tn.mean
        if keep is not None:
            hu = torch.where(keep, hu, torch.full_like(hu, -1024.0))
        x = self.extractor.normalize_hu(hu)
        if any(abs(s - 1.0) > 1e-6 for s in self.scale):
            size = [max(1, round(n * s)) for n, s in zip(x.shape[2:], self.scale, strict=True)]
            x = F.interpolate(x, size=size, mode="trilinear", align_corners=False)
        pads = []
        for n, m in zip(reversed(x.shape[2:]), reversed(self.extractor.stride_multiple), strict=True):
            total = (-n) % m
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads, value=self.extractor.air_value) if any(pads) else x

    def _normalize(self, f: torch.Tensor) -> torch.Tensor:
        if self.feature_norm == "instance":
            return F.instance_norm(f.float())
        if self.feature_norm == "channel":
            return f.float() / (f.float().pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        return f.float()

    def forward(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None,
                body: torch.Tensor | None = None) -> torch.Tensor:
        """AFP between ``pred`` and ``target`` (B, 1, Z, Y, X), normalised CT; ``valid``/``body`` bool, same shape.

        Returns a scalar float32 tensor; gradients flow to ``pred`` only.
        """
        if pred.shape != target.shape:
            raise ValueError(f"pred shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
        keep = valid
        if self.masked:
            if body is None:
                raise ValueError("masked AFP needs the body mask")
            keep = body if keep is None else keep & body
        with torch.no_grad():
            target_features = [self._normalize(f) for f in self.extractor(self._prepare(target, keep))]
        pred_features = self.extractor(self._prepare(pred, keep))
        loss = pred.new_zeros((), dtype=torch.float32)
        for w, fp, ft in zip(self.layer_weights, pred_features, target_features, strict=True):
            loss = loss + w * (self._normalize(fp) - ft).abs().mean()
        return loss
