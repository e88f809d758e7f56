"""The forward of each tile batch of one sliding-window pass: the current :class:`~synthct.inference.ensemble.Ensemble`
through the eager path or a tile engine, and, with a time budget, the one decision between the first and the second
batch.

The sliding window (:mod:`synthct.inference.sliding_window`) only stitches what ``runner(index, x)`` returns; it never
sees networks, flips or budgets. The ensemble is decided *before* the first batch (every fold, every flip of the
settings) and, with a budget, once more *between* the first and the second batch (:meth:`TimeBudget.decide`); each
decision is an immutable :class:`Ensemble`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import torch

from synthct.inference.budget import TimeBudget
from synthct.inference.ensemble import Ensemble, Network, average, member_forward

LOG = logging.getLogger(__name__)

BatchFn = Callable[[torch.Tensor], torch.Tensor]


class BatchEngine(Protocol):
    """A prepared forward of the full ensemble (``synthct.inference.accel.TileEngine``): ``runner(batch_size,
    last_batch)`` returns x (B <= batch_size, C_in, *tile) → (B, C_out, *tile) float32, the same function as
    :func:`~synthct.inference.ensemble.ensemble_forward`."""

    def runner(self, batch_size: int, last_batch: int | None = None) -> BatchFn: ...


def _sync(x: torch.Tensor) -> None:
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)


class EnsembleRunner:
    """``runner(index, x)``: the prediction of tile batch ``index`` (B, C_in, *tile) → (B, C_out, *tile) float32.

    Args:
        networks: the fold networks (eval mode, on the compute device).
        mirror_axes: spatial mirror axes of the TTA flips (() = none).
        amp_dtype: autocast dtype on CUDA, None for float32.
        n_batches: tile batches of the pass.
        engine_run: the tile engine's forward of the full ensemble for this pass (None = eager).
        budget: optional time budget; batch 0 is then computed member by member (timed) and the ensemble of the
            remaining batches is decided from it.
    """

    def __init__(self, networks: Sequence[Network], mirror_axes: Sequence[int], amp_dtype: torch.dtype | None,
                 n_batches: int, engine_run: BatchFn | None = None, budget: TimeBudget | None = None) -> None:
        self.networks = list(networks)
        self.amp = amp_dtype
        self.n_batches = n_batches
        self.budget = budget
        self.ensemble = Ensemble.full(len(self.networks), mirror_axes)
        self._engine_run = engine_run

    def __call__(self, index: int, x: torch.Tensor) -> torch.Tensor:
        if index == 0 and self.budget is not None:
            return self._first_batch_with_budget(x, self.budget)
        if self._engine_run is not None:
            return self._engine_run(x)
        return self._eager(x, self.ensemble)

    def _eager(self, x: torch.Tensor, ensemble: Ensemble) -> torch.Tensor:
        return average(member_forward(self.networks[f], x, dims, self.amp) for f, dims in ensemble.members)

    def _first_batch_with_budget(self, x: torch.Tensor, budget: TimeBudget) -> torch.Tensor:
        """Every member of batch 0 timed; the budget's decision replaces :attr:`ensemble` for the other batches."""
        started = budget.clock()
        outputs: dict[tuple[int, tuple[int, ...]], torch.Tensor] = {}
        times: list[float] = []
        for fold, dims in self.ensemble.members:
            t0 = budget.clock()
            y = member_forward(self.networks[fold], x, dims, self.amp)
            _sync(y)
            times.append(budget.clock() - t0)
            outputs[(fold, dims)] = y
        kept = budget.decide(self.ensemble, times, self.n_batches, started).apply(self.ensemble)
        if kept != self.ensemble:
            if self._engine_run is not None:
                LOG.info("time budget changed the ensemble: the remaining tile batches run eagerly")
                self._engine_run = None
            self.ensemble = kept
        return average(outputs[m] for m in kept.members)
