"""The ensemble split: an immutable Ensemble says which members, ``average`` is the one mean, the runner applies the
budget's decision once between batch 0 and batch 1, and the window stitches whatever a runner returns."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from synthct.inference.ensemble import Ensemble, average, ensemble_forward, flip_sets, member_forward
from synthct.inference.runner import EnsembleRunner
from synthct.inference.sliding_window import SlidingWindowSettings, _batches, _stitch
from synthct.inference.tiling import plan_tiles


def test_members_are_folds_outer_flips_inner() -> None:
    ensemble = Ensemble((0, 2), (2,))
    assert flip_sets((1, 2)) == ((), (3,), (4,), (3, 4))
    assert ensemble.members == ((0, ()), (0, (4,)), (2, ()), (2, (4,)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        ensemble.folds = (1,)  # type: ignore[misc]
    with pytest.raises(ValueError, match="at least one fold"):
        Ensemble(())
    with pytest.raises(ValueError, match=r"mirror_axes must be spatial axes 0..2, got \(3,\)"):
        Ensemble((0,), (3,))


def test_ensemble_forward_is_the_average_of_its_members() -> None:
    torch.manual_seed(0)
    nets = [torch.nn.Conv3d(1, 1, 3, padding=1).eval() for _ in range(2)]
    x = torch.randn(2, 1, 4, 6, 8)
    with torch.inference_mode():
        expected = sum(member_forward(n, x, d, None) for n in nets for d in flip_sets((0, 2))) / 8
        got = ensemble_forward(nets, x, (0, 2), None)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert torch.equal(average(iter([torch.ones(2), torch.full((2,), 3.0)])), torch.full((2,), 2.0))
    with pytest.raises(ValueError, match="no member outputs"):
        average([])


def test_the_runner_without_budget_runs_the_full_ensemble_every_batch() -> None:
    calls: list[int] = []

    def net(k: int):
        def forward(x: torch.Tensor) -> torch.Tensor:
            calls.append(k)
            return x + k
        return forward

    runner = EnsembleRunner([net(1), net(3)], (), None, n_batches=2)
    x = torch.zeros(1, 1, 2, 2, 2)
    assert torch.equal(runner(0, x), torch.full_like(x, 2.0)) and runner(1, x).unique().item() == 2.0
    assert calls == [1, 3, 1, 3] and runner.ensemble == Ensemble((0, 1), ())


def test_the_window_stitches_whatever_the_runner_returns() -> None:
    """No network at all: a runner that returns each tile's batch index + 1 everywhere; with mean blending every
    voxel is the mean over the tiles covering it, so a single-tile volume is exactly 1."""
    settings = SlidingWindowSettings(tile_size=(4, 4, 4), step=1.0, progress=False)
    image = torch.zeros(1, 4, 8, 4)
    tiles = plan_tiles((4, 8, 4), settings.tile_size, settings.step)
    batches = list(_batches(tiles, 1))
    total, weight = _stitch(lambda i, x: torch.full_like(x, float(i + 1)), image, batches, settings,
                            torch.device("cpu"), torch.device("cpu"))
    out = (total / weight).numpy()
    np.testing.assert_array_equal(out[0, :, :4], 1.0)
    np.testing.assert_array_equal(out[0, :, 4:], 2.0)
