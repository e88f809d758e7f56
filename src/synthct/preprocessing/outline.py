"""CBCT field of view and body outline, built the way the SynthRAD2025 release builds them (challenge.md §11).

Use these to turn your own CBCT (or MR) into a SynthRAD2025-style case: :func:`cbct_fov` finds the field of view
of each axial slice: a circle from its radial profile (stage 1, ``get_cbct_fov``) or the convex hull of the voxels
with data; :func:`body_outline` thresholds the input between its 2.5th and 97.5th percentiles, opens it twice, keeps
the largest component, closes and fills holes, dilates in-plane by 10 mm and intersects with the FOV (stage 2,
``segment_outline`` + ``postprocess_outline``).
:func:`cone_slices` keeps the slices whose FOV is at least 95 % of the largest (stage 2 cone correction).

Arrays are (Z, Y, X); spacings are (z, y, x) in mm. numpy / scipy / SimpleITK only.
"""

from __future__ import annotations

import logging

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import ConvexHull, Delaunay, QhullError

LOG = logging.getLogger(__name__)

#: Value of a SynthRAD2025 CBCT outside its field of view.
CBCT_BACKGROUND = -1000.0
#: Fraction of a ring's pixels that must hold data for the ring to lie inside the FOV.
RING_FILL = 0.5
#: Cone correction: keep slices whose FOV area is > this fraction of the largest slice's (stage2.py L72-74).
CONE_KEEP = 0.95
#: In-plane dilation of the outline, mm (postprocess_outline: ball radius (10, 10, 0) voxels at 1 mm).
DILATION_MM = 10.0


def _disc(shape: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def _fit_circle(ys: np.ndarray, xs: np.ndarray) -> tuple[float, float, float]:
    """Least-squares (Kåsa) circle through points → (centre y, centre x, radius)."""
    a = np.column_stack([2 * ys, 2 * xs, np.ones_like(ys)])
    (cy, cx, c), *_ = np.linalg.lstsq(a, ys**2 + xs**2, rcond=None)
    return float(cy), float(cx), float(np.sqrt(max(c + cy**2 + cx**2, 0.0)))


def fov_centre(data: np.ndarray, iterations: int = 4, tol: float = 2.0) -> tuple[float, float]:
    """Centre (y, x) of the circular FOV of one slice (voxels): a circle fitted to the rim of the data region.

    Rim points farther than ``tol`` voxels from the fitted circle are dropped and the fit repeated: there the rim is
    the patient's outline (air inside the FOV that the scanner stored as background), not the FOV.
    """
    filled = ndimage.binary_fill_holes(data)
    rim = filled & ~ndimage.binary_erosion(filled)
    ys, xs = (v.astype(np.float64) for v in np.nonzero(rim))
    cy, cx, r = _fit_circle(ys, xs)
    for _ in range(iterations):
        keep = np.abs(np.hypot(ys - cy, xs - cx) - r) <= tol
        if keep.sum() < 10:
            break
        cy, cx, r = _fit_circle(ys[keep], xs[keep])
    return cy, cx


def slice_fov(image2d: np.ndarray, background: float = CBCT_BACKGROUND) -> tuple[np.ndarray, float, float, float]:
    """Circular FOV of one axial slice (Y, X) → (disc mask, centre y, centre x, radius), all in voxels.

    The centre comes from :func:`fov_centre`; the radius from the radial profile about it: the last ring (1 voxel
    wide) in which at least :data:`RING_FILL` of the voxels hold data (differ from ``background``). A slice with no
    data gives an empty mask.
    """
    data = image2d != background
    if data.sum() < 100:
        return np.zeros(image2d.shape, bool), float("nan"), float("nan"), 0.0
    cy, cx = fov_centre(data)
    yy, xx = np.ogrid[: image2d.shape[0], : image2d.shape[1]]
    r = np.hypot(yy - cy, xx - cx)
    ring = np.floor(r).astype(np.int64).ravel()
    filled = np.bincount(ring, weights=data.ravel()) / np.maximum(np.bincount(ring), 1)
    inside = np.nonzero(filled >= RING_FILL)[0]
    radius = float(inside.max()) + 0.5 if inside.size else 0.0
    return _disc(image2d.shape, (cy, cx), radius), cy, cx, radius


def hull_fov(image2d: np.ndarray, background: float = CBCT_BACKGROUND) -> np.ndarray:
    """FOV of one axial slice (Y, X) as the convex hull of the voxels that hold data (differ from ``background``)."""
    ys, xs = np.nonzero(image2d != background)
    if ys.size < 3:
        return np.zeros(image2d.shape, bool)
    points = np.column_stack([ys, xs]).astype(np.float64)
    try:
        hull = Delaunay(points[ConvexHull(points).vertices])
    except QhullError:  # all points on a line
        return image2d != background
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    gy, gx = np.mgrid[y0:y1, x0:x1]
    inside = hull.find_simplex(np.column_stack([gy.ravel(), gx.ravel()]).astype(np.float64), tol=1e-9) >= 0
    out = np.zeros(image2d.shape, bool)
    out[y0:y1, x0:x1] = inside.reshape(gy.shape)
    return out | (image2d != background)


def cbct_fov(image: np.ndarray, background: float = CBCT_BACKGROUND, method: str = "hull") -> np.ndarray:
    """Per-slice FOV of a CBCT (Z, Y, X) → bool (Z, Y, X).

    ``method="circle"``: the disc of :func:`slice_fov` (centre fitted to the rim, radius from the radial profile, as
    the release's ``get_cbct_fov``). ``method="hull"`` (default): the convex hull of the voxels with data. A CBCT that
    was resampled after a rigid alignment (as the clinic did for ``pancreatic-ct-cbct-seg``) has a FOV that is no
    longer a circle in every axial slice; there a disc cut off up to 1.8 % of the body, the hull none.
    """
    if method == "circle":
        return np.stack([slice_fov(s, background)[0] for s in image])
    if method == "hull":
        return np.stack([hull_fov(s, background) for s in image])
    raise ValueError(f"FOV method must be 'hull' or 'circle', got {method!r}")


def cone_slices(fov: np.ndarray, keep: float = CONE_KEEP) -> np.ndarray:
    """Indices of the axial slices whose FOV area is > ``keep`` times the largest (SynthRAD's cone correction)."""
    area = fov.reshape(fov.shape[0], -1).sum(axis=1)
    return np.nonzero(area > keep * area.max())[0]


def _sitk_binary(op: str, mask: np.ndarray, radius_xyz: tuple[int, int, int]) -> np.ndarray:
    """SimpleITK binary morphology (fast for large radii) on a bool (Z, Y, X) array."""
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    kernel = [int(r) for r in radius_xyz]
    if op == "close":
        out = sitk.BinaryMorphologicalClosing(image, kernel, sitk.sitkBall, 1)
    elif op == "dilate":
        out = sitk.BinaryDilate(image, kernel, sitk.sitkBall, 0, 1)
    elif op == "erode":
        out = sitk.BinaryErode(image, kernel, sitk.sitkBall, 0, 1)
    else:
        raise ValueError(f"unknown morphology operation {op!r}")
    return sitk.GetArrayFromImage(out) > 0


def body_outline(image: np.ndarray, spacing_zyx: tuple[float, float, float], fov: np.ndarray | None = None,
                 threshold: float = 0.3, background: float = CBCT_BACKGROUND) -> np.ndarray:
    """SynthRAD2025-style dilated body mask of an input volume (Z, Y, X) → bool (Z, Y, X).

    Args:
        image: the CBCT (or MR) in its own units.
        spacing_zyx: voxel spacing (z, y, x) in mm; the 10 mm in-plane dilation is converted to voxels with it.
        fov: field of view (Z, Y, X) bool; the percentiles are taken inside it and the result is intersected with it.
            Default: every voxel that differs from ``background``.
        threshold: t of the release's threshold p2.5 + t·(p97.5 − p2.5) (0.1-0.8 per centre in stage2_config.csv).
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
    fov = image != background if fov is None else fov.astype(bool)
    if not fov.any():
        raise ValueError("the field of view is empty: no voxel differs from the background value "
                         f"{background}")
    lo, hi = np.percentile(image[fov], [2.5, 97.5])
    mask = (image > lo + threshold * (hi - lo)) & fov
    for _ in range(2):  # two erode/dilate passes with a 1 x 10 x 10 element: cuts thin links (couch, cables)
        mask = _sitk_binary("dilate", _sitk_binary("erode", mask, (5, 5, 0)), (5, 5, 0))
    labels, n = ndimage.label(mask)
    if n == 0:
        raise ValueError(f"no body found above the threshold {lo + threshold * (hi - lo):.1f}")
    mask = labels == (int(np.argmax(np.bincount(labels.ravel())[1:])) + 1)
    mask = _sitk_binary("close", mask, (8, 8, 8))
    mask = ndimage.binary_fill_holes(mask)
    mask = np.stack([ndimage.binary_fill_holes(s) for s in mask])
    _, sy, sx = spacing_zyx
    radius = (round(DILATION_MM / sx), round(DILATION_MM / sy), 0)
    mask = _sitk_binary("dilate", mask, radius) & fov
    LOG.debug("outline: threshold %.1f, %d voxels", lo + threshold * (hi - lo), int(mask.sum()))
    return mask
