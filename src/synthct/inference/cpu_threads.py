"""How many CPU threads inference may use: the CPUs this process can really run on, not the machine's core count.

PyTorch sizes its intra-op pool from the machine's cores. Inside ``docker run --cpus 2`` on a 16-core host, or on a
shared 2-core machine, that pool is larger than the CPU time the process gets: every parallel region then ends in a
barrier that waits for a descheduled thread, and a small 3-D network (hundreds of short kernels per tile) slows down
far beyond its fair share (benchmarks/cpu_contention.py measures it). :func:`available_cpus` reads the affinity mask
and the cgroup CPU quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``); :func:`configure_cpu_threads` sets the pool to
that once per process and says so in one log line.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import torch

from synthct.paths import SETTINGS_ENV, settings

LOG = logging.getLogger(__name__)
#: Environment variable that overrides the thread count (an integer ≥ 1).
THREADS_ENV = SETTINGS_ENV["cpu_threads"]
_CGROUP = Path("/sys/fs/cgroup")
_configured: int | None = None


def cgroup_cpu_limit(root: Path = _CGROUP) -> float | None:
    """CPUs granted by the cgroup quota (e.g. 1.5 for ``--cpus 1.5``), or None when there is no quota."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]  # cgroup v2: "max 100000" or "150000 100000"
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())  # cgroup v1: -1 = no quota
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def available_cpus(root: Path = _CGROUP) -> int:
    """CPUs this process can use: the affinity mask, capped by the cgroup quota (rounded up), at least 1."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    return max(1, min(affinity, math.ceil(limit - 1e-9) if limit else affinity))


def configure_cpu_threads(requested: int | None = None) -> int:
    """Set torch's intra-op threads to ``requested``, else $SYNTHCT_CPU_THREADS, else :func:`available_cpus`.

    Returns the thread count. Logs once per process (and again only when the count changes).
    """
    global _configured
    source = "requested"
    raw = settings().cpu_threads
    if requested is None and raw:
        try:
            requested = int(raw)
        except ValueError:
            raise ValueError(f"{THREADS_ENV} must be an integer >= 1, got {raw!r}") from None
        source = THREADS_ENV
    if requested is not None and requested < 1:
        raise ValueError(f"CPU threads must be >= 1, got {requested}")
    threads = requested if requested is not None else available_cpus()
    if requested is None:
        source = "CPUs available to this process"
    if threads != _configured:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        LOG.info("CPU inference: %d intra-op thread(s) (%s; torch default was %d, machine cores %s)", threads, source,
                 before, os.cpu_count())
        _configured = threads
    return threads
