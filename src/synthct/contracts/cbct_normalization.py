"""Per-case CBCT input normalisation (``synthct plan --cbct-normalization per-case``), an option beside the paper's
dataset-level ``clip_zscore`` (the default).

``robust_zscore_mask``: clip to the plans' range (as ``clip_zscore``), then z = (x − median) / (IQR / 1.349) with the
median and inter-quartile range of the clipped CBCT **inside the body mask** of this case (whole image if the mask is
empty or absent); IQR / 1.349 is the std of a normal distribution with that IQR. A global HU offset and scale of the
CBCT (calibration drift, issue 22) therefore cancel exactly (up to the clip), which a dataset z-score cannot do.

The map is exactly invertible given the case's (median, scale) that :func:`robust_zscore` returns:
:func:`invert_robust_zscore` gives back the clipped HU.

Pure numpy; :class:`~synthct.contracts.normalization.InputNormalization` dispatches to it.
"""

from __future__ import annotations

import numpy as np

#: Scheme name in the plans and in synthct.json (``input_normalization.scheme``).
PER_CASE_SCHEME = "robust_zscore_mask"
#: ``synthct plan --cbct-normalization`` choice → input normalisation scheme.
CBCT_NORMALIZATIONS = {"dataset": "clip_zscore", "per-case": PER_CASE_SCHEME}
#: IQR of a unit normal distribution.
IQR_PER_STD = 1.3489795003921634
_SCALE_FLOOR = 1e-6


def robust_stats(clipped: np.ndarray, mask: np.ndarray | None) -> tuple[float, float]:
    """(median, IQR / 1.349) of ``clipped`` inside ``mask`` (bool, same shape; None or empty: every voxel).

    The scale is floored at 1e-6 (a constant image)."""
    values = clipped[mask] if mask is not None and mask.any() else clipped.ravel()
    q25, median, q75 = np.percentile(values.astype(np.float64), (25.0, 50.0, 75.0))
    return float(median), max(float(q75 - q25) / IQR_PER_STD, _SCALE_FLOOR)


def robust_zscore(image: np.ndarray, mask: np.ndarray | None, clip: tuple[float, float]
                  ) -> tuple[np.ndarray, float, float]:
    """(z float32, median, scale): the per-case robust z-score of ``image`` (Z, Y, X) clipped to ``clip``."""
    clipped = np.clip(image.astype(np.float64), *clip)
    if not np.all(np.isfinite(clipped)):
        raise ValueError("image has NaN values; cannot normalise it")
    median, scale = robust_stats(clipped, mask)
    return ((clipped - median) / scale).astype(np.float32), median, scale


def invert_robust_zscore(z: np.ndarray, median: float, scale: float) -> np.ndarray:
    """The clipped input (float64) back from :func:`robust_zscore`'s output and the case's (median, scale)."""
    return z.astype(np.float64) * scale + median
