"""OpenMP wait policy for the entry points (process.py, ``synthct``): passive unless the user chose otherwise.

With GNU OpenMP's default policy, idle intra-op threads spin before they sleep. On a machine whose cores are shared
(a laptop running other work, a CI runner, ``docker run --cpus``), the spinning threads take CPU from the threads
that have work, and a small 3-D network slows down far beyond its fair share: benchmarks/cpu_contention.py measured
the Task 2 demo on the 2-core machine with 4 busy processes at 8.9x its quiet time with spinning threads and 2.3x
with ``OMP_WAIT_POLICY=PASSIVE``, which costs 11-16 % when the machine is quiet. The variable is read when torch loads
its OpenMP runtime, so this must run before torch is imported; it does nothing if torch already is, or if the user
set the variable.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY_ENV = "OMP_WAIT_POLICY"


def prefer_passive_openmp() -> bool:
    """Set OMP_WAIT_POLICY=PASSIVE if unset and torch is not loaded yet; returns whether it is PASSIVE now."""
    if WAIT_POLICY_ENV not in os.environ and "torch" not in sys.modules:
        os.environ[WAIT_POLICY_ENV] = "PASSIVE"
    return os.environ.get(WAIT_POLICY_ENV, "").upper() == "PASSIVE"
