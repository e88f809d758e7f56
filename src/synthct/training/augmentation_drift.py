"""CBCT calibration-drift augmentation (preset ``cbct-drift``): input only, applied in HU before normalisation.

A CBCT of another day, centre or scanner differs from the training CBCTs by a global HU offset and scale, by its
low-frequency shading and by its noise level (issue 22). :func:`apply_drift` models these three in HU on a (Z, Y, X)
volume or patch; :class:`CBCTDriftTransform` applies it to the normalised input channels of a training patch (back to
HU with the dataset normalisation, drift, normalise again) and never to the target or the mask.

The ranges of :class:`DriftRanges` and their source (``docs/cbct-simulation.md``: the real CBCT of
``samples/pancreas_cbct``, training slices 14..42, measured by ``scripts/cbct_simulation.py``):

* **affine** HU' = s·HU + o (about 0 HU, water), p = 1/3: o in ±100 HU, s in 0.85-1.15, the fraction-to-fraction and
  scanner-to-scanner range of issue 22 (the real CBCT's tissue medians sit 150-250 HU below the CT's and 30-40 HU from
  the calibrated simulation's, docs/cbct-simulation.md rows 1-3);
* **shading**, p = 1/3: an extra smooth random field (Gaussian-filtered white noise) with std 0-1.5 x the measured
  shading std (:data:`MEASURED_SHADING_STD_HU` = 176 HU) and autocorrelation length 0.5-1.5 x the measured one
  (:data:`MEASURED_SHADING_CORR_MM` = 85.9 mm; z/in-plane sigma ratio 12/43 as the calibrated simulator's);
* **noise level**, p = 1/3: noise std x 0.5-2 of the measured :data:`MEASURED_NOISE_STD_HU` = 95.8 HU. Above 1: add
  noise correlated in-plane as the calibrated simulator's (Gaussian sigma :data:`NOISE_SIGMA_MM` = 1.85 voxels of
  2 mm) with std 95.8·sqrt(f² − 1), so the total std is f x the measured one. Below 1 (approximate: noise cannot be
  removed without touching anatomy): the high-pass part above a 2 x :data:`NOISE_SIGMA_MM` in-plane Gaussian is scaled
  by f.

All three are drawn independently; the result is clipped to [-1024, 3071] HU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import ImageOnlyTransform
from scipy import ndimage

from synthct import HU_MAX, HU_MIN
from synthct.contracts.normalization import InputNormalization

#: docs/cbct-simulation.md, real CBCT column: "shading std (low-pass residual, HU)".
MEASURED_SHADING_STD_HU = 176.0
#: docs/cbct-simulation.md: "shading correlation length (mm, autocorrelation 0.5)".
MEASURED_SHADING_CORR_MM = 85.9
#: docs/cbct-simulation.md: "noise std (high-pass residual in soft tissue, HU)".
MEASURED_NOISE_STD_HU = 95.8
#: docs/cbct-simulation.md, calibrated ``noise_sigma_vox`` 1.85 on the simulator's 2 mm in-plane grid.
NOISE_SIGMA_MM = 1.85 * 2.0
#: docs/cbct-simulation.md, calibrated ``shading_sigma_mm`` (12, 43, 43): z sigma / in-plane sigma.
SHADING_Z_RATIO = 12.0 / 43.0


@dataclass(frozen=True)
class DriftRanges:
    """Probability and range of each drift transform (see the module docstring for the sources)."""

    p_affine: float = 1.0 / 3.0
    offset_hu: tuple[float, float] = (-100.0, 100.0)
    scale: tuple[float, float] = (0.85, 1.15)
    p_shading: float = 1.0 / 3.0
    shading_amplitude: tuple[float, float] = (0.0, 1.5)  # x MEASURED_SHADING_STD_HU
    shading_length: tuple[float, float] = (0.5, 1.5)  # x MEASURED_SHADING_CORR_MM
    p_noise: float = 1.0 / 3.0
    noise_factor: tuple[float, float] = (0.5, 2.0)  # x MEASURED_NOISE_STD_HU

    def __post_init__(self) -> None:
        for name in ("p_affine", "p_shading", "p_noise"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("offset_hu", "scale", "shading_amplitude", "shading_length", "noise_factor"):
            low, high = getattr(self, name)
            if not low <= high:
                raise ValueError(f"{name} range must be (low, high) with low <= high, got {(low, high)}")
        if self.scale[0] <= 0 or self.shading_length[0] <= 0 or self.noise_factor[0] <= 0 \
                or self.shading_amplitude[0] < 0:
            raise ValueError("scale, shading_length and noise_factor must be > 0 and shading_amplitude >= 0")


@dataclass(frozen=True)
class DriftParams:
    """One drawn drift: HU' = scale·(HU + shading + noise change) + offset_hu. The identity by default."""

    scale: float = 1.0
    offset_hu: float = 0.0
    shading_std_hu: float = 0.0
    shading_corr_mm: float = MEASURED_SHADING_CORR_MM
    noise_factor: float = 1.0
    seed: int = 0

    def to_json(self) -> dict[str, float]:
        return asdict(self)

    @property
    def is_identity(self) -> bool:
        return (self.scale == 1.0 and self.offset_hu == 0.0 and self.shading_std_hu == 0.0
                and self.noise_factor == 1.0)


def draw_drift(rng: np.random.Generator, ranges: DriftRanges = DriftRanges()) -> DriftParams:
    """Draw each transform with its probability and its parameters uniformly in their ranges."""
    scale, offset, shading, length, noise = 1.0, 0.0, 0.0, MEASURED_SHADING_CORR_MM, 1.0
    if rng.random() < ranges.p_affine:
        scale, offset = float(rng.uniform(*ranges.scale)), float(rng.uniform(*ranges.offset_hu))
    if rng.random() < ranges.p_shading:
        shading = float(rng.uniform(*ranges.shading_amplitude)) * MEASURED_SHADING_STD_HU
        length = float(rng.uniform(*ranges.shading_length)) * MEASURED_SHADING_CORR_MM
    if rng.random() < ranges.p_noise:
        noise = float(rng.uniform(*ranges.noise_factor))
    return DriftParams(scale, offset, shading, length, noise, int(rng.integers(0, 2**31 - 1)))


def smooth_field(shape: Sequence[int], spacing_zyx: Sequence[float], corr_mm: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Unit-std smooth random field on a (Z, Y, X) grid: Gaussian-filtered white noise whose in-plane autocorrelation
    falls to 0.5 at ``corr_mm`` (Gaussian sigma = corr / (2·sqrt(ln 2))), z sigma x :data:`SHADING_Z_RATIO`.

    Computed on a coarse grid (sigma / 3 per voxel) padded by 4 sigma on each side, then interpolated linearly, so
    that it costs the same for a patch or a volume and has no periodic wrap-around."""
    sigma_yx = corr_mm / (2.0 * np.sqrt(np.log(2.0)))
    sigma = np.array([sigma_yx * SHADING_Z_RATIO, sigma_yx, sigma_yx])
    step = sigma / 3.0
    extent = np.array([n * s for n, s in zip(shape, spacing_zyx, strict=True)])
    coarse_shape = tuple(int(v) for v in np.ceil((extent + 8 * sigma) / step) + 1)
    coarse = ndimage.gaussian_filter(rng.standard_normal(coarse_shape), 3.0, mode="constant")
    core = tuple(slice(int(np.ceil(4 * 3.0)), max(int(np.ceil(4 * 3.0)) + 1, n - int(np.ceil(4 * 3.0))))
                 for n in coarse_shape)
    coarse /= max(float(coarse[core].std()), 1e-12)
    axes = [(4 * sigma[a] + np.arange(n) * spacing_zyx[a]) / step[a] for a, n in enumerate(shape)]
    coords = np.meshgrid(*axes, indexing="ij")
    return ndimage.map_coordinates(coarse, coords, order=1, mode="nearest")


def apply_drift(hu: np.ndarray, spacing_zyx: Sequence[float], params: DriftParams) -> np.ndarray:
    """The drifted (Z, Y, X) HU volume, float32, clipped to [-1024, 3071]; deterministic given ``params``."""
    out = hu.astype(np.float64)
    if params.is_identity:
        return np.clip(out, HU_MIN, HU_MAX).astype(np.float32)
    rng = np.random.default_rng(params.seed)
    spacing = tuple(float(s) for s in spacing_zyx)
    if params.shading_std_hu > 0:
        out += params.shading_std_hu * smooth_field(out.shape, spacing, params.shading_corr_mm, rng)
    if params.noise_factor > 1.0:
        sigma = (0.0, NOISE_SIGMA_MM / spacing[1], NOISE_SIGMA_MM / spacing[2])
        noise = ndimage.gaussian_filter(rng.standard_normal(out.shape), sigma)
        noise /= max(float(noise.std()), 1e-12)
        out += MEASURED_NOISE_STD_HU * np.sqrt(params.noise_factor ** 2 - 1.0) * noise
    elif params.noise_factor < 1.0:
        low = ndimage.gaussian_filter(out, (0.0, 2 * NOISE_SIGMA_MM / spacing[1], 2 * NOISE_SIGMA_MM / spacing[2]))
        out = low + params.noise_factor * (out - low)
    out = params.scale * out + params.offset_hu
    return np.clip(out, HU_MIN, HU_MAX).astype(np.float32)


def hu_of(z: np.ndarray, norm: InputNormalization) -> np.ndarray:
    """HU of an input normalised with the dataset-level ``clip_zscore`` (exact inside the clip range)."""
    if norm.scheme != "clip_zscore":
        raise ValueError(f"the cbct-drift augmentation needs the dataset-level clip_zscore input normalisation (HU "
                         f"recoverable from the preprocessed patch), got {norm.scheme!r}")
    assert norm.mean is not None and norm.std is not None
    return z.astype(np.float64) * norm.std + norm.mean


class CBCTDriftTransform(ImageOnlyTransform):
    """Drift the first ``n_inputs`` channels of a (C, Z, Y, X) normalised patch in HU; target and mask untouched.

    Args:
        norm: the input normalisation of the plans (``clip_zscore``).
        spacing_zyx: voxel spacing of the patches (the plans' spacing after transpose), mm.
        ranges: probabilities and ranges.
        seed: seed of this transform's own generator (tests); None (training): every draw is seeded from numpy's
            global generator, which the trainer's ``seed`` seeds and nnU-Net's augmentation workers seed apart, so
            that worker processes holding copies of this transform do not repeat each other's draws.
    """

    def __init__(self, norm: InputNormalization, spacing_zyx: Sequence[float], ranges: DriftRanges = DriftRanges(),
                 n_inputs: int = 1, seed: int | None = None) -> None:
        super().__init__()
        hu_of(np.zeros(1), norm)  # fails early on a per-case scheme
        self.norm, self.spacing, self.ranges, self.n_inputs = norm, tuple(float(s) for s in spacing_zyx), ranges, \
            n_inputs
        self.rng = None if seed is None else np.random.default_rng(seed)

    def get_parameters(self, **data_dict: object) -> dict:
        rng = self.rng if self.rng is not None else np.random.default_rng(np.random.randint(0, 2**31 - 1))
        return {"drift": draw_drift(rng, self.ranges)}

    def _apply_to_image(self, img: torch.Tensor, **params: object) -> torch.Tensor:
        drift = params["drift"]
        assert isinstance(drift, DriftParams)
        if drift.is_identity:
            return img
        out = img.clone()
        for c in range(min(self.n_inputs, img.shape[0])):
            hu = apply_drift(hu_of(img[c].numpy(), self.norm), self.spacing, drift)
            out[c] = torch.from_numpy(self.norm.apply(hu))
        return out
