"""CPU thread count from the CPUs this process may use (affinity, cgroup v1/v2 quota), overrides and bad values."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from synthct.inference import cpu_threads


def _cgroup(tmp_path: Path, v2: str | None = None, v1: tuple[int, int] | None = None) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    if v2 is not None:
        (tmp_path / "cpu.max").write_text(v2 + "\n")
    if v1 is not None:
        (tmp_path / "cpu").mkdir()
        (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(f"{v1[0]}\n")
        (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(f"{v1[1]}\n")
    return tmp_path


@pytest.mark.parametrize(("v2", "v1", "expected"), [
    ("max 100000", None, None),            # cgroup v2, no quota
    ("150000 100000", None, 1.5),          # docker --cpus 1.5
    (None, (-1, 100000), None),            # cgroup v1, no quota
    (None, (50000, 100000), 0.5),          # docker --cpus 0.5 on cgroup v1
    (None, None, None),                    # no cgroup files at all
])
def test_cgroup_quota_is_read(tmp_path: Path, v2: str | None, v1: tuple[int, int] | None,
                              expected: float | None) -> None:
    assert cpu_threads.cgroup_cpu_limit(_cgroup(tmp_path, v2, v1)) == expected


def test_available_cpus_is_capped_by_quota_and_affinity(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    assert cpu_threads.available_cpus(_cgroup(tmp_path, "max 100000")) == affinity
    assert cpu_threads.available_cpus(_cgroup(tmp_path / "a", "50000 100000")) == 1  # 0.5 CPU → 1 thread
    assert cpu_threads.available_cpus(_cgroup(tmp_path / "b", f"{(affinity + 8) * 100000} 100000")) == affinity


def test_configure_sets_torch_threads_and_honours_the_override(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    try:
        assert cpu_threads.configure_cpu_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv(cpu_threads.THREADS_ENV, "2")
        assert cpu_threads.configure_cpu_threads() == 2 and torch.get_num_threads() == 2
        monkeypatch.setenv(cpu_threads.THREADS_ENV, "two")
        with pytest.raises(ValueError, match="'two'"):
            cpu_threads.configure_cpu_threads()
        with pytest.raises(ValueError, match="got 0"):
            cpu_threads.configure_cpu_threads(0)
        monkeypatch.delenv(cpu_threads.THREADS_ENV)
        assert cpu_threads.configure_cpu_threads() == cpu_threads.available_cpus()
    finally:
        torch.set_num_threads(before)
        cpu_threads._configured = None
