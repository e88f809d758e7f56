"""Image similarity exactly as the SynthRAD2025 evaluation scores an sCT: MAE, PSNR and masked 3-D MS-SSIM.

Reference: ``SynthRAD2025/evaluation`` at commit 17cac47 (2025-05-12), ``image_metrics.py`` (``ImageMetrics``); the
constants are listed in ``docs/evaluation.md`` and ``challenge.md`` §8. Every function takes the ground-truth CT
``gt`` and the synthetic CT ``pred`` as (Z, Y, X) arrays in HU of any integer or float dtype, and a required,
keyword-only body ``mask`` (voxels > 0 are inside; ``None`` means the whole image). As in the official
``score_patient``, voxels outside the mask are set to -1024 HU in both images before any metric is computed.

All functions are axis-order agnostic: the official code works on (X, Y, Z) arrays and every operation used here is
symmetric under a permutation of the axes, so (Z, Y, X) arrays give the same numbers.
"""

from __future__ import annotations

import logging
from itertools import product

import numpy as np
import numpy.typing as npt
from scipy.ndimage import uniform_filter

LOG = logging.getLogger(__name__)

#: HU range of the official evaluation, R = [-1024, 3071] (``image_metrics.py`` L14; equal to ``synthct.HU_MIN/MAX``).
HU_RANGE: tuple[float, float] = (-1024.0, 3071.0)
#: Width of :data:`HU_RANGE`, Q = 4095 HU: the data range of PSNR and MS-SSIM.
DATA_RANGE: float = HU_RANGE[1] - HU_RANGE[0]
#: MS-SSIM scale weights (Wang et al. 2003); also the luminance exponents, as in the official code.
MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
#: Every axis shorter than this is edge-padded (centred) to it before MS-SSIM.
MS_SSIM_MIN_SIZE: int = 97
#: Edge length of the uniform (box) window of the local statistics, voxels.
SSIM_WINDOW: int = 7
#: SSIM stability constants: C1 = (K1 Q)^2, C2 = (K2 Q)^2, C3 = C2 / 2.
SSIM_K1: float = 0.01
SSIM_K2: float = 0.03

ArrayLike = npt.ArrayLike


def _validate(gt: ArrayLike, pred: ArrayLike, mask: ArrayLike | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check shapes and return ``(gt, pred, inside)`` with ``inside`` the boolean mask (mask > 0)."""
    gt_arr, pred_arr = np.asarray(gt), np.asarray(pred)
    if gt_arr.shape != pred_arr.shape:
        raise ValueError(f"gt and pred must have the same shape, got {gt_arr.shape} and {pred_arr.shape}")
    for name, arr in (("gt", gt_arr), ("pred", pred_arr)):
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise TypeError(f"{name} must have an integer or float dtype, got {arr.dtype}")
    if mask is None:
        inside = np.ones(gt_arr.shape, dtype=bool)
    else:
        mask_arr = np.asarray(mask)
        if mask_arr.shape != gt_arr.shape:
            raise ValueError(f"mask must have the image shape {gt_arr.shape}, got {mask_arr.shape}")
        inside = mask_arr > 0
    if not inside.any():
        raise ValueError("mask has no voxel > 0; the metrics are undefined on an empty mask")
    return gt_arr, pred_arr, inside


def _work_dtype(arr: np.ndarray) -> type[np.floating]:
    """float32 images stay float32 (as the official code's NumPy promotions keep them); anything else is float64."""
    return np.float32 if arr.dtype == np.float32 else np.float64


def mae(gt: ArrayLike, pred: ArrayLike, *, mask: ArrayLike | None) -> float:
    """Mean absolute error inside the mask, in HU. Neither image is clipped.

    .. math:: \\mathrm{MAE} = \\frac{1}{|M|} \\sum_{v \\in M} |G(v) - P(v)|

    Reference: SynthRAD2025/evaluation 17cac47, ``image_metrics.py`` ``ImageMetrics.mae`` (L73).

    Args:
        gt: ground-truth CT, (Z, Y, X), HU, any integer or float dtype.
        pred: synthetic CT, same shape, HU.
        mask: body mask, same shape; voxels > 0 are scored. ``None`` scores every voxel.

    Returns:
        MAE in HU (float64 arithmetic).

    Raises:
        ValueError: shapes differ or the mask is empty.
    """
    gt_arr, pred_arr, inside = _validate(gt, pred, mask)
    diff = gt_arr[inside].astype(np.float64) - pred_arr[inside].astype(np.float64)
    return float(np.abs(diff).mean())


def psnr(gt: ArrayLike, pred: ArrayLike, *, mask: ArrayLike | None) -> float:
    """Peak signal-to-noise ratio inside the mask, in dB, over the fixed HU range.

    Both images are clipped to [-1024, 3071] HU, the squared error is averaged over the mask and
    ``PSNR = 10 log10(4095^2 / MSE)``. This equals skimage ``peak_signal_noise_ratio(data_range=4095)`` on the masked
    voxel vectors; identical images give ``inf``.

    Reference: SynthRAD2025/evaluation 17cac47, ``image_metrics.py`` ``ImageMetrics.psnr`` with
    ``use_population_range=True`` (L109-121).

    Args:
        gt: ground-truth CT, (Z, Y, X), HU, any integer or float dtype.
        pred: synthetic CT, same shape, HU.
        mask: body mask, same shape; voxels > 0 are scored. ``None`` scores every voxel.

    Returns:
        PSNR in dB (float64 arithmetic); ``inf`` when the clipped images agree on the whole mask.

    Raises:
        ValueError: shapes differ or the mask is empty.
    """
    gt_arr, pred_arr, inside = _validate(gt, pred, mask)
    g = np.clip(gt_arr[inside].astype(np.float64), *HU_RANGE)
    p = np.clip(pred_arr[inside].astype(np.float64), *HU_RANGE)
    mse = float(np.mean((g - p) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(DATA_RANGE**2 / mse))


def _pad_widths(shape: tuple[int, ...], target: int = MS_SSIM_MIN_SIZE) -> list[tuple[int, int]]:
    """Centred pad widths that bring every axis shorter than ``target`` up to ``target`` (before, after)."""
    return [(max((target - n) // 2, 0), max(target - n - (target - n) // 2, 0)) for n in shape]


def downsample_mean2(image: np.ndarray) -> np.ndarray:
    """2x2x2 mean filter then every second voxel, as ``fftconvolve(image, ones((2,2,2))/8, 'same')[::2, ::2, ::2]``.

    The ``'same'`` output of a length-2 kernel is ``(x[i] + x[i-1]) / 2`` per axis with ``x[-1] = 0``, so output voxel
    ``(i, j, k)`` is the mean of input voxels ``2i-1..2i``, ``2j-1..2j``, ``2k-1..2k`` with zeros before index 0 (the
    first plane is halved). Computed by shifted sums instead of an FFT; equal to the FFT result up to rounding
    (about 1e-12 relative).

    Args:
        image: (Z, Y, X) array, any float dtype.

    Returns:
        float64 array of shape ``ceil(n / 2)`` per axis.
    """
    x = np.asarray(image, dtype=np.float64)
    padded = np.pad(x, [(1, 0)] * x.ndim)
    out = np.zeros([(n + 1) // 2 for n in x.shape], dtype=np.float64)
    for offsets in product((0, 1), repeat=x.ndim):
        # padded index 2i + 1 - a is x[2i - a]
        out += padded[tuple(slice(1 - a, 1 - a + n, 2) for a, n in zip(offsets, x.shape, strict=True))]
    out /= 2**x.ndim
    return out


def _ssim_map(x: np.ndarray, y: np.ndarray, weight: float) -> np.ndarray:
    """Per-voxel ``L^w C^w S^w`` at one scale (official ``structural_similarity_at_scale``, uniform 7^3 window).

    Follows the official operation order so that NumPy's dtype promotions (float32 stays float32) match it.
    """
    np_window = SSIM_WINDOW**x.ndim
    cov_norm = np_window / (np_window - 1)  # sample covariance
    c1 = (SSIM_K1 * DATA_RANGE) ** 2
    c2 = (SSIM_K2 * DATA_RANGE) ** 2
    c3 = c2 / 2

    ux = uniform_filter(x, size=SSIM_WINDOW)
    uy = uniform_filter(y, size=SSIM_WINDOW)
    vx = cov_norm * (uniform_filter(x * x, size=SSIM_WINDOW) - ux * ux)
    vy = cov_norm * (uniform_filter(y * y, size=SSIM_WINDOW) - uy * uy)
    vxy = cov_norm * (uniform_filter(x * y, size=SSIM_WINDOW) - ux * uy)

    result = np.clip((2 * ux * uy + c1) / (ux * ux + uy * uy + c1), 0, None)  # luminance
    del ux, uy
    sx = np.sqrt(np.clip(vx, 0, None))
    sy = np.sqrt(np.clip(vy, 0, None))
    sxy = sx * sy
    del sx, sy
    result *= np.clip((2 * sxy + c2) / (vx + vy + c2), 0, None)  # contrast
    del vx, vy
    result *= np.clip((vxy + c3) / (sxy + c3), 0, None)  # structure
    # L^w C^w S^w == (L C S)^w for non-negative factors; one power instead of three
    return np.power(result, weight, out=result)


def _crop(arr: np.ndarray, width: int) -> np.ndarray:
    """Drop ``width`` voxels from both ends of every axis (skimage ``crop(arr, width)``)."""
    return arr[tuple(slice(width, n - width) for n in arr.shape)]


def ms_ssim_levels(gt: ArrayLike, pred: ArrayLike, *, mask: ArrayLike | None) -> list[float]:
    """The five masked per-level SSIM values of :func:`ms_ssim`, before clipping (for diagnostics and tests).

    Args:
        gt: ground-truth CT, (Z, Y, X), HU, any integer or float dtype.
        pred: synthetic CT, same shape, HU.
        mask: body mask, same shape; voxels > 0 are inside. ``None`` uses every voxel.

    Returns:
        Level values, finest first; ``nan`` for a level whose subsampled, cropped mask is empty (as the official code).
    """
    gt_arr, pred_arr, inside = _validate(gt, pred, mask)
    images = []
    for arr in (gt_arr, pred_arr):
        work = np.clip(arr.astype(_work_dtype(arr), copy=False), HU_RANGE[0], HU_RANGE[1])
        work[~inside] = HU_RANGE[0]
        work -= HU_RANGE[0]  # [0, 4095]
        images.append(work)
    widths = _pad_widths(gt_arr.shape)
    x, y = (np.pad(im, widths, mode="edge") for im in images)
    m = np.pad(inside, widths, mode="edge")
    del images, inside

    pad = (SSIM_WINDOW - 1) // 2
    values: list[float] = []
    for level, weight in enumerate(MS_SSIM_WEIGHTS):
        ssim_map = _ssim_map(x, y, weight)
        selected = _crop(ssim_map, pad)[_crop(m, pad)]
        if selected.size == 0:
            LOG.warning("MS-SSIM level %d has an empty mask after subsampling and cropping; its value is nan", level)
            values.append(float("nan"))
        else:
            values.append(float(selected.mean(dtype=np.float64)))
        del ssim_map, selected
        if level + 1 < len(MS_SSIM_WEIGHTS):
            x, y, m = downsample_mean2(x), downsample_mean2(y), m[::2, ::2, ::2]
    return values


def ms_ssim(gt: ArrayLike, pred: ArrayLike, *, mask: ArrayLike | None) -> float:
    """Masked 3-D multi-scale SSIM, the ``ms_ssim`` of the SynthRAD2025 leaderboard (in [0, 1], 1 = identical).

    Steps (official ``ImageMetrics.ms_ssim``, masked variant):

    1. clip both images to [-1024, 3071] HU, set voxels outside the mask to -1024, add 1024 (range [0, 4095]);
    2. edge-pad every axis shorter than 97 voxels to 97, centred; the mask gets the same padding;
    3. at each of 5 levels with weights w = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333): local means, sample
       (co)variances (factor NP / (NP - 1), NP = 343) over a 7^3 box window (scipy ``uniform_filter``, mode
       ``reflect``); luminance L = (2 ux uy + C1) / (ux^2 + uy^2 + C1), contrast C = (2 sx sy + C2) / (vx + vy + C2),
       structure S = (vxy + C3) / (sx sy + C3), each clipped at >= 0, with C1 = (0.01 * 4095)^2,
       C2 = (0.03 * 4095)^2, C3 = C2 / 2; per-voxel map L^w C^w S^w (the luminance exponent is w as well);
    4. level value = mean of the map over the mask after cropping 3 voxels from every border of map and mask;
    5. between levels: images get a 2x2x2 mean (``fftconvolve`` mode ``same``, see :func:`downsample_mean2`) and
       every second voxel is kept; the mask is only subsampled;
    6. MS-SSIM = product of the level values, each clipped to [0, 1].

    Reference: SynthRAD2025/evaluation 17cac47, ``image_metrics.py`` ``ImageMetrics.ms_ssim`` and
    ``structural_similarity_at_scale`` (L125-283; the value reported as ``ms_ssim`` is ``ms_ssim_mask_val``).

    Precision: integer and float64 inputs are processed in float64; float32 inputs stay float32 at the finest level,
    as NumPy's promotion does in the official code (levels 2-5 are float64 there and here).

    Args:
        gt: ground-truth CT, (Z, Y, X), HU, any integer or float dtype.
        pred: synthetic CT, same shape, HU.
        mask: body mask, same shape; voxels > 0 are inside. ``None`` uses every voxel.

    Returns:
        MS-SSIM in [0, 1]; ``nan`` if the mask vanishes at a coarse level (tiny masks), as in the official code.

    Raises:
        ValueError: shapes differ or the mask is empty.
    """
    levels = ms_ssim_levels(gt, pred, mask=mask)
    return float(np.prod([np.clip(v, 0.0, 1.0) for v in levels]))


def image_metrics(gt: ArrayLike, pred: ArrayLike, *, mask: ArrayLike | None) -> dict[str, float]:
    """``{"mae", "psnr", "ms_ssim"}`` for one case, the official per-case keys (``ImageMetrics.score_patient``).

    Args:
        gt: ground-truth CT, (Z, Y, X), HU.
        pred: synthetic CT, same shape, HU.
        mask: body mask, same shape; voxels > 0 are scored. ``None`` scores every voxel.
    """
    return {
        "mae": mae(gt, pred, mask=mask),
        "psnr": psnr(gt, pred, mask=mask),
        "ms_ssim": ms_ssim(gt, pred, mask=mask),
    }
