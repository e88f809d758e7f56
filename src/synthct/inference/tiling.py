"""Pure tile planning for sliding-window inference (no torch).

nnU-Net's step rule, per axis: with image size ``I``, tile size ``T`` and step fraction ``s`` (0 < s <= 1) the number
of tiles is ``n = ceil((I - T) / (s * T)) + 1`` and the starts are spread evenly so that the first tile is flush with
the start and the last tile flush with the end::

    image (I = 20), tile T = 8, s = 0.5  →  n = ceil(12 / 4) + 1 = 4, actual step 12 / 3 = 4
    |0 . . . . . . . . . . . . . . . . . . 19|
    [0 ...... 7]
            [4 ..... 11]
                    [8 ..... 15]
                            [12 .... 19]

An axis shorter than its tile gets one tile starting at 0; the caller pads the image to the tile size first.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

#: A tile: one ``slice`` per spatial axis, (Z, Y, X).
TileSlices = tuple[slice, ...]


def axis_starts(size: int, tile: int, step: float) -> list[int]:
    """Start indices along one axis (nnU-Net's evenly spread steps, last tile flush with the border).

    Args:
        size: image size along the axis, voxels (>= ``tile``; pad smaller images first).
        tile: tile size along the axis, voxels (> 0).
        step: step as a fraction of the tile size, 0 < step <= 1.

    Raises:
        ValueError: on a non-positive tile, a step outside (0, 1] or an image smaller than the tile.
    """
    if tile <= 0:
        raise ValueError(f"tile size must be positive, got {tile}")
    if not 0 < step <= 1:
        raise ValueError(f"step must be in (0, 1], got {step}")
    if size < tile:
        raise ValueError(f"image size {size} is smaller than the tile size {tile}; pad the image first")
    n = int(math.ceil((size - tile) / (tile * step))) + 1
    if n == 1:
        return [0]
    actual = (size - tile) / (n - 1)
    return [int(round(actual * i)) for i in range(n)]


def tile_starts(image_shape: Sequence[int], tile_shape: Sequence[int], step: float) -> list[list[int]]:
    """Per-axis start lists for an image of ``image_shape`` (Z, Y, X) and tiles of ``tile_shape``."""
    if len(image_shape) != len(tile_shape):
        raise ValueError(f"image shape {tuple(image_shape)} and tile shape {tuple(tile_shape)} differ in rank")
    return [axis_starts(i, t, step) for i, t in zip(image_shape, tile_shape, strict=True)]


def plan_tiles(image_shape: Sequence[int], tile_shape: Sequence[int], step: float) -> list[TileSlices]:
    """All tiles as slice tuples, in C order (last axis fastest), covering every voxel of ``image_shape``."""
    starts = tile_starts(image_shape, tile_shape, step)
    return [
        tuple(slice(s, s + t) for s, t in zip(combo, tile_shape, strict=True)) for combo in itertools.product(*starts)
    ]


def padded_shape(image_shape: Sequence[int], tile_shape: Sequence[int]) -> tuple[int, ...]:
    """The image shape after padding every axis up to at least the tile size."""
    return tuple(max(i, t) for i, t in zip(image_shape, tile_shape, strict=True))


def centred_padding(image_shape: Sequence[int], tile_shape: Sequence[int]) -> list[tuple[int, int]]:
    """(before, after) padding per axis to reach :func:`padded_shape`, split as nnU-Net does (floor before)."""
    pads = []
    for i, t in zip(image_shape, tile_shape, strict=True):
        total = max(t - i, 0)
        pads.append((total // 2, total - total // 2))
    return pads
