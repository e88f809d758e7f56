"""The AFP experiment's own measures (scripts/afp_report.py) on the real porcine CT: blur lowers the bone edge
sharpness, steps at the sliding window's tile borders raise the seam ratio, noise does neither."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from testutils import SAMPLES, load_script

report = load_script("afp_report")
TILE = (16, 96, 96)


def _ct() -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    image = sitk.ReadImage(str(SAMPLES / "porcine" / "ct.mha"))
    body = sitk.GetArrayFromImage(sitk.ReadImage(str(SAMPLES / "porcine" / "mask.mha"))) > 0
    return sitk.GetArrayFromImage(image).astype(np.float32), body, tuple(reversed(image.GetSpacing()))


def test_edge_sharpness_is_one_for_the_ct_and_falls_with_blur() -> None:
    ct, body, spacing = _ct()
    assert report.edge_sharpness(ct, ct, body, spacing) == 1.0
    noisy = ct + np.random.default_rng(0).normal(0, 20, ct.shape).astype(np.float32)
    blurred = [report.edge_sharpness(ct, ndimage.gaussian_filter(ct, s), body, spacing) for s in (0.7, 1.5, 3.0)]
    assert 0.9 < report.edge_sharpness(ct, noisy, body, spacing) < 1.2
    assert 1.0 > blurred[0] > blurred[1] > blurred[2] > 0


def test_seam_ratio_sees_steps_at_tile_borders_only() -> None:
    ct, body, _ = _ct()
    noisy = ct + np.random.default_rng(1).normal(0, 20, ct.shape).astype(np.float32)
    assert 0.8 < report.seam_ratio(noisy, ct, body, TILE, 0.3) < 1.25
    # a 40 HU step at every tile border, as unblended tiles would leave; the same steps 3 voxels off the borders
    at, off = (noisy + 40.0 * _parity(ct.shape, shift) for shift in (0, 3))
    assert report.seam_ratio(at, ct, body, TILE, 0.3) > 1.3
    assert report.seam_ratio(off, ct, body, TILE, 0.3) < 1.25


def _parity(shape: tuple[int, ...], shift: int) -> np.ndarray:
    """0/1 field that flips at every sliding-window tile border (step 0.3) moved by ``shift`` voxels, per axis."""
    from synthct.inference.tiling import axis_starts

    field = np.zeros(shape, dtype=np.float32)
    for axis, (size, tile) in enumerate(zip(shape, TILE, strict=True)):
        moved = {b + shift for s in axis_starts(size, tile, 0.3) for b in (s, s + tile)}
        borders = sorted(b for b in moved if 0 < b < size)
        flips = np.searchsorted(borders, np.arange(size), side="right") % 2
        field += np.expand_dims(flips, [a for a in range(3) if a != axis])
    return field % 2
