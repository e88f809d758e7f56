"""Folder mode of ``synthct dose`` (and ``synthct evaluate --dose``): every case of a release folder, in parallel.

Cases pair as ``synthct evaluate`` pairs them (:func:`synthct.metrics.cases.pair_cases`: a SynthRAD2025 release folder
or flat ``<id>.mha`` folders). Each case gets ``OUT/<id>/`` (see :mod:`synthct.dose.case`); a case whose
``dose_metrics.json`` exists is skipped (resumable) unless ``overwrite``. Cases run in a process pool of ``workers``
processes, and ``rank``/``world_size`` deal the sorted cases round-robin (``cases[rank::world_size]``) like
``synthct predict`` under torchrun, for several machines sharing one output folder. ``OUT/dose_summary.json`` is
rebuilt from every finished case folder at the end of each run (the last rank to finish writes the complete one).
A case that fails is recorded with its error; the others go on.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from synthct.dose.case import DoseCase, run_case, stem_of
from synthct.dose.settings import MODALITIES
from synthct.metrics.cases import pair_cases_skipping

LOG = logging.getLogger(__name__)

#: The per-modality numbers averaged in the summary.
SUMMARY_METRICS: tuple[str, ...] = ("dose_mae_percent", "dvh_error", "gamma_pass_percent")


@dataclass(frozen=True)
class FolderJob:
    """A folder run: ``template`` gives every case's settings (its paths are replaced per case), ``settings_for``
    maps a region code to that region's plan settings."""

    pred_dir: Path
    gt_dir: Path
    masks_dir: Path
    out_dir: Path
    template: DoseCase
    settings_for: Callable[[str], Sequence[Any]]
    structures_dir: Path | None = None
    workers: int = 1
    rank: int = 0
    world_size: int = 1
    overwrite: bool = False
    plan_cache: Path | None = None
    skip_missing: bool = False


def cases_of(job: FolderJob) -> list[DoseCase]:
    """One :class:`DoseCase` per ground-truth case, sorted by id, this rank's share only."""
    if not 0 <= job.rank < job.world_size:
        raise ValueError(f"rank {job.rank} outside a world of size {job.world_size}")
    paired, skipped = pair_cases_skipping(job.pred_dir, job.gt_dir, masks_dir=job.masks_dir,
                                          gt_seg_dir=job.structures_dir, skip_missing=job.skip_missing)
    if skipped:
        LOG.warning("dose: no prediction for %d case(s), skipped: %s", len(skipped), ", ".join(skipped[:20]))
    out = []
    for files in paired:
        assert files.mask is not None
        out.append(replace(job.template, case_id=files.case_id, ct=files.gt, mask=files.mask,
                           scts={stem_of(files.pred): files.pred}, structures=files.gt_seg,
                           settings=tuple(job.settings_for(files.region))))
    return out[job.rank :: job.world_size]


def _init_worker(level: int, threads: int) -> None:
    """Log like the parent (``synthct`` configures the root logger on stderr) and share the cores: pyRadPlan's numba
    ray tracer and BLAS would otherwise each use every core in every worker."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        import numba

        limit = int(numba.config.NUMBA_NUM_THREADS)
        numba.set_num_threads(max(1, min(threads, limit)))
    except ImportError:  # pragma: no cover - numba comes with the dose extra
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn (nnunetv2)
        pass


def worker_threads(workers: int) -> int:
    """Threads per worker process: the CPUs this process may use, divided among ``workers`` (at least 1)."""
    return max(1, len(os.sched_getaffinity(0)) // max(1, workers))


def _run_one(case: DoseCase, out: Path, overwrite: bool, plan_cache: Path | None) -> dict[str, Any]:
    try:
        result = run_case(case, out, overwrite=overwrite, plan_cache=plan_cache)
        return {"case": case.case_id, "status": "done", "seconds": result["seconds"]}
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError, MemoryError) as exc:
        LOG.error("%s: %s", case.case_id, exc)
        return {"case": case.case_id, "status": "failed", "error": str(exc)[:500]}


def run_folder(job: FolderJob) -> dict[str, Any]:
    """Run this rank's cases and (re)write ``dose_summary.json``; returns the summary."""
    cases = cases_of(job)
    job.out_dir.mkdir(parents=True, exist_ok=True)
    todo = [c for c in cases if job.overwrite or not (job.out_dir / c.case_id / "dose_metrics.json").is_file()]
    LOG.info("dose: %d case(s) for this rank (%d of %d), %d already done, %d worker(s)", len(cases), job.rank,
             job.world_size, len(cases) - len(todo), job.workers)
    statuses: list[dict[str, Any]] = []
    if job.workers <= 1 or len(todo) <= 1:
        statuses = [_run_one(c, job.out_dir / c.case_id, job.overwrite, job.plan_cache) for c in todo]
    else:
        # spawn, not fork: a parent that already ran torch or numba holds GNU OpenMP, and forking it aborts the child
        # ("fork() called from a process already using GNU OpenMP"); measured in benchmarks/dose_speed.py
        context = multiprocessing.get_context("spawn")
        init = (logging.getLogger().getEffectiveLevel(), worker_threads(job.workers))
        with ProcessPoolExecutor(max_workers=job.workers, mp_context=context, initializer=_init_worker,
                                 initargs=init) as pool:
            futures = [pool.submit(_run_one, c, job.out_dir / c.case_id, job.overwrite, job.plan_cache) for c in todo]
            statuses = [f.result() for f in futures]
    summary = summarise(job.out_dir)
    summary["this_run"] = statuses
    tmp = job.out_dir / f".dose_summary.{os.getpid()}.json"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    tmp.replace(job.out_dir / "dose_summary.json")
    return summary


def summarise(out_dir: Path) -> dict[str, Any]:
    """Per-case rows and per-modality means of every ``<case>/dose_metrics.json`` under ``out_dir``."""
    rows: list[dict[str, Any]] = []
    for path in sorted(out_dir.glob("*/dose_metrics.json")):
        data = json.loads(path.read_text())
        for stem, entry in data["scts"].items():
            row: dict[str, Any] = {"case": data["case"], "sct": stem, "synthetic_target": data["target"]["synthetic"]}
            for modality in MODALITIES:
                for metric in SUMMARY_METRICS:
                    if modality in entry:
                        row[f"{modality}_{metric}"] = entry[modality][metric]
            rows.append(row)
    means: dict[str, float] = {}
    for key in sorted({k for r in rows for k in r if k.split("_", 1)[0] in MODALITIES}):
        values = [r[key] for r in rows if key in r and math.isfinite(r[key])]
        if values:
            means[key] = sum(values) / len(values)
    return {"cases": rows, "mean": means, "count": len(rows)}
