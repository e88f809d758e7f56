"""The working grid of a prediction (the input resampled to the model spacing), bounded before anything is allocated.

Limits, chosen from the platform and the data:

* ``MAX_GRID_VOXELS`` = 200 M voxels. grand-challenge's default algorithm memory is 8 GB (7 GB usable); the
  predictor holds about 21 bytes per working-grid voxel at its peak (float32 input and mask, bool mask, float32 sum
  and weight of the sliding window, float32 output), so 200 M voxels ≈ 4.2 GB next to the interpreter, torch, the
  model and the input-grid arrays (~2-3 GB). The largest real SynthRAD2025 volumes are about 200 × 512 × 512 ≈ 52 M
  voxels at 1 × 1 × 3 mm (median 98 × 398 × 465 ≈ 18 M): they fit even for a 1 mm isotropic model (600 × 512 × 512
  ≈ 157 M). A 20 mm in-plane spacing at a 1 mm model would ask for 192 × 3720 × 2940 ≈ 2.1 G voxels (8.4 GB per
  float32 tensor): refused here in one line instead of an allocator error or the kernel's OOM kill.
* ``MAX_SCALE`` = 8 per axis (input spacing / model spacing in [1/8, 8]). Real inputs are 0.5-1.5 mm in plane and
  1-5 mm between slices, models 1-3 mm: factors 1/6-5. Beyond 8 the spacing is not a scanner's (a unit error such as
  cm or µm written as mm): a 0.01 mm spacing would shrink a whole body to ~2 voxels and predict air everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_GRID_VOXELS = 200_000_000
MAX_SCALE = 8.0


class GridError(ValueError):
    """The input's spacing or size asks for a working grid outside the limits; ``str()`` is one line."""


def working_shape(shape_zyx: Sequence[int], spacing_zyx: Sequence[float],
                  target_zyx: Sequence[float]) -> tuple[int, ...]:
    """The (Z, Y, X) shape of the input resampled from ``spacing_zyx`` to ``target_zyx`` (mm), checked.

    Raises:
        GridError: a per-axis factor input/model spacing outside [1/MAX_SCALE, MAX_SCALE], or more than
            MAX_GRID_VOXELS voxels.
    """
    factors = [s / t for s, t in zip(spacing_zyx, target_zyx, strict=True)]
    shape = tuple(max(1, round(n * f)) for n, f in zip(shape_zyx, factors, strict=True))
    sizes = f"{tuple(shape_zyx)} voxels at {_mm(spacing_zyx)} mm (z, y, x) → {shape} at the model's " \
            f"{_mm(target_zyx)} mm"
    bad = [f"{axis} {f:.3g}" for axis, f in zip("zyx", factors, strict=True)
           if not 1 / MAX_SCALE <= f <= MAX_SCALE]
    if bad:
        raise GridError(f"implausible voxel spacing: resampling {sizes} scales by {', '.join(bad)} (allowed "
                        f"1/{MAX_SCALE:g} to {MAX_SCALE:g} per axis; is the spacing in mm?)")
    voxels = 1
    for n in shape:
        voxels *= n
    if voxels > MAX_GRID_VOXELS:
        raise GridError(f"image too large: resampling {sizes} = {voxels / 1e6:.0f} M voxels, more than the "
                        f"{MAX_GRID_VOXELS / 1e6:.0f} M this predictor bounds its memory to")
    return shape


def _mm(spacing: Sequence[float]) -> str:
    return "(" + ", ".join(f"{s:.4g}" for s in spacing) + ")"
