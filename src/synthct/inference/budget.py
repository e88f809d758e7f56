"""Per-case time budget: after the first tile batch, project the whole case and shrink the ensemble if it would not fit.

grand-challenge kills a job at the phase's time limit (default 20 min, which also covers the platform's start, the
model download and extraction and the upload). A timed-out case has no output at all, so a smaller ensemble that
finishes beats a full one that does not. The tile runner (:mod:`synthct.inference.runner`) computes the first tile
batch member by member (each fold × each mirror flip, timed), then :meth:`TimeBudget.decide` projects with
:func:`plan_ensemble`::

    total = elapsed so far + batches left × kept folds × kept flips × seconds per member forward + finishing

where *finishing* (un-padding, resampling back, HU conversion, writing) is estimated as the time the case took
before its first tile (reading, model loading, normalisation): conservative, and measured on this machine. If the
projection exceeds the budget it drops, in this order and only as far as needed:

1. mirroring TTA (all flips → the plain forward only);
2. folds, in fold order (the first listed fold first), always keeping at least one.

Every drop is logged with the numbers behind it. The decision is an immutable :class:`EnsemblePlan`, taken once
between the first and the second tile batch; the runner averages the first batch's kept members with the one
averaging function (:func:`synthct.inference.ensemble.average`), so the whole volume is predicted by the same
(reduced) ensemble. This module decides only: it runs no network. If even one fold without TTA cannot fit, the case
still runs (no output is worse than a late one) and a warning says by how much the budget will be exceeded; when the
case ends over its budget, :meth:`TimeBudget.finish` says so too. The budget never ends silently exceeded.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from synthct.inference.ensemble import Ensemble
from synthct.paths import SETTINGS_ENV, settings

LOG = logging.getLogger(__name__)
#: Environment variable holding the image's default budget in seconds (set in the Dockerfile; read by synthct.paths).
BUDGET_ENV = SETTINGS_ENV["time_budget"]


def process_start(clock: Callable[[], float] = time.monotonic) -> float:
    """When this process started, on ``clock``'s scale (Linux ``/proc``; elsewhere: now).

    The budget should count the interpreter's start and the torch import too, not only what follows ``main()``.
    """
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return clock()
    return clock() - max(age, 0.0)


@dataclass(frozen=True)
class EnsemblePlan:
    """What to keep of a fold ensemble with ``n_flips`` mirror flips, and the projected case time.

    Attributes:
        folds: indices (into the ensemble's networks) to keep, in their original order.
        tta: keep mirroring TTA.
        projected_s: projected total case time in seconds with this plan.
        fits: whether ``projected_s`` is within the budget.
        dropped: human-readable list of what was dropped (empty: nothing).
    """

    folds: tuple[int, ...]
    tta: bool
    projected_s: float
    fits: bool
    dropped: tuple[str, ...] = ()

    def apply(self, ensemble: Ensemble) -> Ensemble:
        """The kept part of ``ensemble``: its folds at :attr:`folds`, its mirror axes only with :attr:`tta`."""
        return Ensemble(tuple(ensemble.folds[k] for k in self.folds), ensemble.mirror_axes if self.tta else ())


def plan_ensemble(budget_s: float, elapsed_s: float, member_s: float, batches_left: int, fold_names: Sequence[str],
                  n_flips: int, finishing_s: float) -> EnsemblePlan:
    """The largest ensemble, in the drop order TTA → folds (first listed first), whose projection fits ``budget_s``.

    Args:
        budget_s: the case's budget in seconds.
        elapsed_s: seconds spent so far (including the first tile batch).
        member_s: seconds of one network forward on one tile batch (one fold, one flip).
        batches_left: tile batches still to compute.
        fold_names: names of the ensemble's folds, in order (for the log).
        n_flips: mirror flips per fold (1 = no TTA).
        finishing_s: estimated seconds after the last tile batch.
    """
    n = len(fold_names)

    def projected(n_folds: int, flips: int) -> float:
        return elapsed_s + batches_left * n_folds * flips * member_s + finishing_s

    dropped: list[str] = []
    flips = n_flips
    if projected(n, flips) > budget_s and flips > 1:
        dropped.append(f"mirroring TTA ({flips} flips -> 1)")
        flips = 1
    keep = n
    while keep > 1 and projected(keep, flips) > budget_s:
        keep -= 1
    if keep < n:
        dropped.append(f"folds {', '.join(fold_names[: n - keep])} (kept {', '.join(fold_names[n - keep:])})")
    total = projected(keep, flips)
    return EnsemblePlan(tuple(range(n - keep, n)), flips > 1, total, total <= budget_s, tuple(dropped))


@dataclass(frozen=True)
class TimeBudget:
    """A per-case budget of ``seconds`` counted from ``started`` (on ``clock``'s scale). Immutable: it decides, the
    caller (:mod:`synthct.inference.runner`) applies the decision.

    Attributes:
        seconds: the budget.
        started: start of the case (default: the process's start).
        fold_names: names of the ensemble's folds, for the log (default "0", "1", ...).
        clock: monotonic clock in seconds.
    """

    seconds: float
    started: float = field(default_factory=process_start)
    fold_names: Sequence[str] | None = None
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise ValueError(f"time budget must be a positive number of seconds, got {self.seconds!r}")

    def elapsed(self) -> float:
        return self.clock() - self.started

    def decide(self, ensemble: Ensemble, member_times: Sequence[float], n_batches: int,
               first_batch_started: float) -> EnsemblePlan:
        """After the first tile batch: what to keep of ``ensemble`` for the remaining batches (logged).

        Args:
            ensemble: the full ensemble the first batch was computed with.
            member_times: seconds of each member's forward on the first batch, in member order (the first may
                include warm-up and is left out of the median when there are others).
            n_batches: tile batches of the whole case, the first included.
            first_batch_started: ``clock()`` when the first batch began; the time before it estimates the
                finishing work.

        Returns:
            The decision; :meth:`EnsemblePlan.apply` gives the kept :class:`Ensemble`.
        """
        if not member_times:
            raise ValueError("member_times must hold one time per ensemble member, got none")
        finishing = max(first_batch_started - self.started, 0.0)
        member_s = statistics.median(member_times[1:] if len(member_times) > 1 else member_times)
        n_folds, n_flips = len(ensemble.folds), len(ensemble.flips)
        names = [str(f) for f in (self.fold_names or range(n_folds))]
        plan = plan_ensemble(self.seconds, self.elapsed(), member_s, n_batches - 1, names, n_flips, finishing)
        self._log(plan, member_s, n_batches, n_folds, n_flips, finishing)
        return plan

    def _log(self, plan: EnsemblePlan, member_s: float, n_batches: int, n_folds: int, n_flips: int,
             finishing: float) -> None:
        full = self.elapsed() + (n_batches - 1) * n_folds * n_flips * member_s + finishing
        basis = (f"{self.elapsed():.1f} s elapsed + {n_batches - 1} tile batches x {n_folds} fold(s) x {n_flips} "
                 f"flip(s) x {member_s:.3f} s + {finishing:.1f} s finishing")
        if not plan.dropped:
            LOG.info("time budget %g s: projected %.1f s (%s): keeping the whole ensemble", self.seconds, full,
                     basis)
        elif plan.fits:
            LOG.warning("time budget %g s: projected %.1f s (%s) would exceed it: dropped %s; projected now %.1f s",
                        self.seconds, full, basis, "; ".join(plan.dropped), plan.projected_s)
        else:
            LOG.warning("time budget %g s: projected %.1f s (%s) would exceed it: dropped %s; even so projected "
                        "%.1f s, %.1f s over the budget: continuing (a late output beats none)", self.seconds, full,
                        basis, "; ".join(plan.dropped), plan.projected_s, plan.projected_s - self.seconds)

    def finish(self) -> float:
        """Log the case's time against the budget (a warning when over); returns the elapsed seconds."""
        elapsed = self.elapsed()
        if elapsed > self.seconds:
            LOG.warning("time budget %g s exceeded: the case took %.1f s (%.1f s over)", self.seconds, elapsed,
                        elapsed - self.seconds)
        else:
            LOG.info("time budget %g s: the case took %.1f s", self.seconds, elapsed)
        return elapsed


def budget_seconds(cli: float | None, routed: float | None, env: Mapping[str, str] | None = None) -> float | None:
    """The budget in seconds: ``--time-budget`` > models.json ``time_budget`` > $SYNTHCT_TIME_BUDGET > none.

    0 (at any level) switches the budget off. Raises ValueError on a negative or non-numeric value.
    """
    sources = (("--time-budget", cli), ("models.json time_budget", routed), (BUDGET_ENV, settings(env).time_budget))
    for source, value in sources:
        if value is None or value == "":
            continue
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError(f"{source} must be a number of seconds, got {value!r}") from None
        if seconds < 0 or seconds != seconds:
            raise ValueError(f"{source} must be >= 0 seconds, got {value!r}")
        return seconds or None
    return None
