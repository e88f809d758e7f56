"""The entry points ask OpenMP for passive waiting before torch loads, unless the user chose a policy."""

from __future__ import annotations

import os
import subprocess
import sys

from testutils import REPO

_PROBE = ("import os, sys; sys.argv = ['process.py', '--help']; import runpy; "
          "exec(open('process.py').read().split('from synthct.challenge')[0]); "
          "import torch; print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)")


def _run(env_extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | env_extra
    env["PYTHONPATH"] = str(REPO / "src")
    return subprocess.run([sys.executable, "-c", _PROBE], cwd=REPO, env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_process_py_sets_passive_waiting_before_torch() -> None:
    assert _run({}) == "PASSIVE True"


def test_a_users_policy_is_kept() -> None:
    assert _run({"OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE True"


def test_nothing_changes_once_torch_is_loaded() -> None:
    code = ("import os, sys; import torch; from synthct.openmp import prefer_passive_openmp; "
            "print(prefer_passive_openmp(), os.environ.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | {"PYTHONPATH": str(REPO / "src")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False None"
