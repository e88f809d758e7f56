"""Tile planning: exact starts, nnU-Net parity, coverage, the flush last tile, error messages."""

from __future__ import annotations

import numpy as np
import pytest
from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

from synthct.inference.tiling import axis_starts, centred_padding, padded_shape, plan_tiles, tile_starts


@pytest.mark.parametrize(
    ("size", "tile", "step", "expected"),
    [
        (20, 8, 0.5, [0, 4, 8, 12]),
        (110, 64, 0.5, [0, 23, 46]),
        (64, 64, 0.3, [0]),
        (65, 64, 0.3, [0, 1]),
        (98, 48, 0.3, [0, 12, 25, 38, 50]),  # 50 / 4 = 12.5: rounds half to even, as nnU-Net
        (100, 40, 1.0, [0, 30, 60]),
    ],
)
def test_axis_starts_exact(size: int, tile: int, step: float, expected: list[int]) -> None:
    assert axis_starts(size, tile, step) == expected


def test_matches_stock_nnunet_step_rule() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        tile = tuple(int(v) for v in rng.integers(4, 64, size=3))
        image = tuple(t + int(rng.integers(0, 300)) for t in tile)
        step = float(rng.choice([0.1, 0.25, 0.3, 0.5, 0.75, 1.0]))
        assert tile_starts(image, tile, step) == compute_steps_for_sliding_window(image, tile, step)


@pytest.mark.parametrize(("step", "count"), [(0.3, 150), (0.5, 64)])
def test_median_synthrad_volume_tile_counts(step: float, count: int) -> None:
    # anchors.md §6.2: 98 x 398 x 465 with 48 x 192 x 192 tiles
    assert len(plan_tiles((98, 398, 465), (48, 192, 192), step)) == count


def test_tiles_cover_every_voxel_and_last_is_flush() -> None:
    shape, tile = (37, 101, 77), (16, 32, 40)
    cover = np.zeros(shape, dtype=int)
    tiles = plan_tiles(shape, tile, 0.3)
    for t in tiles:
        cover[t] += 1
        assert all(s.stop - s.start == n for s, n in zip(t, tile, strict=True))
    assert cover.min() >= 1
    assert [s.stop for s in tiles[-1]] == list(shape)
    assert [s.start for s in tiles[0]] == [0, 0, 0]


def test_padding_for_small_images() -> None:
    assert padded_shape((10, 200, 30), (16, 64, 64)) == (16, 200, 64)
    assert centred_padding((10, 200, 30), (16, 64, 64)) == [(3, 3), (0, 0), (17, 17)]


@pytest.mark.parametrize(
    ("args", "message"),
    [((20, 8, 0.0), "step must be in"), ((20, 8, 1.5), "step must be in"), ((5, 8, 0.5), "smaller than the tile"),
     ((20, 0, 0.5), "tile size must be positive")],
)
def test_errors_quote_the_bad_value(args: tuple[int, int, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        axis_starts(*args)
