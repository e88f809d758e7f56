"""Many cases at once (``synthct predict -i DIR -o OUT``), with the engine and settings of ``process.py``.

Every case goes through the same functions as one grand-challenge run (:func:`~synthct.challenge.inputs.load_pair`
/ :func:`~synthct.challenge.inputs.load_case` → :func:`~synthct.challenge.routing.resolve_route` →
:func:`~synthct.challenge.algorithm.load_predictor` → :func:`~synthct.challenge.algorithm.synthesise`); only the
discovery of the cases (:mod:`synthct.challenge.batch_inputs`) and the bookkeeping live here.

- A model is loaded once per (model folder, settings): the cases are sorted by (task, region, id).
- Resumable: ``OUT/<id>.mha`` is written to a temporary file and renamed, so an existing ``<id>.mha`` is complete and
  is skipped; temporaries left by an interrupted run are removed.
- A bad case is logged by id and the others continue; the run returns 1 when any case failed.
- Ctrl-C (``KeyboardInterrupt``) in a single-process run keeps the finished cases and still writes
  ``predict_summary.json``, with ``"interrupted": true`` and the ids not reached under ``"not_reached"``; the same
  command resumes.
- Under ``torchrun`` the sorted cases are dealt round-robin over the ranks (``cases[rank::world]``, one GPU per rank:
  ``cuda:LOCAL_RANK``); each rank writes only its own outputs, rank 0 gathers the results (gloo) and writes
  ``OUT/predict_summary.json``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthct.challenge.algorithm import load_predictor, synthesise
from synthct.challenge.batch_inputs import BatchCase
from synthct.challenge.errors import CaseError
from synthct.challenge.routing import Route, resolve_route
from synthct.paths import DistributedEnv, distributed_env

LOG = logging.getLogger(__name__)
SUMMARY_NAME = "predict_summary.json"
#: How long a finished rank waits for the others at the final gather (gloo collective timeout).
GATHER_TIMEOUT = datetime.timedelta(hours=48)


@dataclass(frozen=True)
class BatchConfig:
    """Settings of :func:`predict_batch`.

    Attributes:
        out_dir: output folder (``<id>.mha`` per case; created).
        models_json: the routing file (``resources/models.json``), as process.py uses it.
        model_route: a fixed model folder + options for every case instead of ``models_json``.
        device: "auto", "cpu", "cuda" or "cuda:N"; under torchrun "auto"/"cuda" become ``cuda:LOCAL_RANK``.
        overwrite: predict cases whose output exists too.
        progress: progress bar over the cases (rank 0).
    """

    out_dir: Path
    models_json: Path | None = None
    model_route: Route | None = None
    device: str = "auto"
    overwrite: bool = False
    progress: bool = True


@dataclass
class CaseResult:
    """What happened to one case: ``status`` is "done", "skipped" (output existed) or "failed" (with ``error``)."""

    case_id: str
    task: str | None
    region: str | None
    status: str
    output: str | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class BatchSummary:
    """All results (every rank's), and the counts per status."""

    results: list[CaseResult] = field(default_factory=list)
    interrupted: bool = False
    not_reached: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        out = {"done": 0, "skipped": 0, "failed": 0}
        for r in self.results:
            out[r.status] += 1
        return out

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if r.status == "failed"]


def shard(cases: Sequence[BatchCase], rank: int, world_size: int) -> list[BatchCase]:
    """This rank's cases: the (task, region, id)-sorted list dealt round-robin, so every rank sees each model."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside a world of size {world_size}")
    ordered = sorted(cases, key=lambda c: (c.task or "", c.region or "", c.case_id))
    return ordered[rank::world_size]


def rank_device(device: str, env: DistributedEnv | None) -> str:
    """The device of this rank: ``cuda:LOCAL_RANK`` for "auto"/"cuda" under torchrun when CUDA is available."""
    if env is None or env.world_size == 1 or device not in ("auto", "cuda"):
        return device
    import torch

    if torch.cuda.is_available():
        return f"cuda:{env.local_rank}"
    return "cpu" if device == "auto" else device


def remove_stale_temporaries(out_dir: Path, case_ids: Sequence[str]) -> int:
    """Delete ``.<id>.*.mha`` temporaries of an interrupted write for these cases; returns how many."""
    removed = 0
    for case_id in case_ids:
        for tmp in out_dir.glob(f".{case_id}.*.mha"):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


class _Predictors:
    """Keeps the predictor of the current (model folder, options); loads the next one only when the route changes."""

    def __init__(self, config: BatchConfig, device: str) -> None:
        self.config = config
        self.device = device
        self._key: tuple[Any, ...] | None = None
        self._predictor: Any = None

    def route(self, task: str, region: str) -> Route:
        if self.config.model_route is not None:
            route = self.config.model_route
        else:
            assert self.config.models_json is not None
            route = resolve_route(self.config.models_json, task, region, self.device)
        # one bar over the cases replaces the per-case tile bar; the numbers do not change
        return dataclasses.replace(route, options=dataclasses.replace(route.options, device=self.device,
                                                                      progress=False))

    def get(self, task: str, region: str) -> Any:
        route = self.route(task, region)
        key = (task, route.model_dir, route.options)
        if key != self._key:
            self._predictor = None  # free the previous model before loading the next
            self._key = None
            LOG.info("loading %s for %s/%s", route.model_dir, task, region)
            self._predictor = load_predictor(route, task)
            self._key = key
        return self._predictor


def _run_one(case: BatchCase, predictors: _Predictors, out_dir: Path) -> CaseResult:
    t0 = time.perf_counter()
    result = CaseResult(case.case_id, case.task, case.region, "failed")
    try:
        loaded = case.load()
        predictor = predictors.get(loaded.task, loaded.region)
        path = synthesise(predictor, loaded, out_dir / f"{case.case_id}.mha")
        result.status, result.output = "done", path.name
    except CaseError as exc:
        result.error = str(exc)
    except Exception as exc:  # an internal error in one case must not stop the others
        LOG.debug("case %s", case.case_id, exc_info=True)
        result.error = f"internal error: {type(exc).__name__}: {exc}"
    result.seconds = round(time.perf_counter() - t0, 3)
    if result.error:
        LOG.error("case %s failed: %s", case.case_id, result.error)
    return result


def _progress(items: list[BatchCase], enabled: bool, rank: int, world: int) -> Any:
    from tqdm.auto import tqdm

    desc = "predict" if world == 1 else f"predict rank {rank}/{world}"
    return tqdm(items, desc=desc, unit="case", disable=not enabled or rank != 0)


def predict_rank(cases: Sequence[BatchCase], config: BatchConfig, rank: int = 0, world: int = 1,
                 device: str | None = None, results: list[CaseResult] | None = None) -> list[CaseResult]:
    """Predict this rank's share of ``cases`` into ``config.out_dir``; returns one result per case of the share.

    ``results``: a list the results are appended to as they come (what is in it survives an interrupt).
    """
    mine = shard(cases, rank, world)
    out_dir = config.out_dir
    remove_stale_temporaries(out_dir, [c.case_id for c in mine])
    predictors = _Predictors(config, device or config.device)
    results = [] if results is None else results
    for case in _progress(mine, config.progress, rank, world):
        target = out_dir / f"{case.case_id}.mha"
        if target.is_file() and not config.overwrite:
            results.append(CaseResult(case.case_id, case.task, case.region, "skipped", output=target.name))
            continue
        results.append(_run_one(case, predictors, out_dir))
    return results


def write_summary(out_dir: Path, summary: BatchSummary, world: int) -> Path:
    """``predict_summary.json`` (counts, per-case status/error/seconds), written via a temporary file + rename."""
    payload = {"counts": summary.counts, "world_size": world, "interrupted": summary.interrupted,
               "not_reached": sorted(summary.not_reached),
               "cases": {r.case_id: {k: v for k, v in dataclasses.asdict(r).items() if k != "case_id"}
                         for r in sorted(summary.results, key=lambda r: r.case_id)}}
    path = out_dir / SUMMARY_NAME
    tmp = out_dir / f".{SUMMARY_NAME}.{os.getpid()}"
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)
    return path


def _gather(results: list[CaseResult], world: int) -> list[CaseResult]:
    import torch.distributed as dist

    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, [dataclasses.asdict(r) for r in results])
    return [CaseResult(**row) for part in gathered for row in part]


def _predict_single(cases: Sequence[BatchCase], config: BatchConfig, device: str) -> BatchSummary:
    """One process: on Ctrl-C write the summary of what finished (``interrupted``) and re-raise."""
    results: list[CaseResult] = []
    try:
        predict_rank(cases, config, 0, 1, device, results=results)
    except KeyboardInterrupt:
        finished = {r.case_id for r in results}
        summary = BatchSummary(results, interrupted=True,
                               not_reached=[c.case_id for c in cases if c.case_id not in finished])
        path = write_summary(config.out_dir, summary, 1)
        LOG.warning("interrupted: %d done, %d skipped, %d failed, %d not reached; summary in %s (run the same "
                    "command again to resume)", *summary.counts.values(), len(summary.not_reached), path)
        raise
    return BatchSummary(results)


def predict_batch(cases: Sequence[BatchCase], config: BatchConfig) -> BatchSummary:
    """Predict every case (this process's share under torchrun) and, on rank 0, write the summary.

    Returns the summary over all ranks. Raises CaseError only when the output folder cannot be created.
    """
    ids = [c.case_id for c in cases]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"case ids occur more than once (outputs would collide): {', '.join(duplicates)}")
    try:
        config.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CaseError(config.out_dir, f"cannot create the output folder ({exc.strerror or exc})") from None
    env = distributed_env()
    world = 1 if env is None else env.world_size
    rank = 0 if env is None else env.rank
    device = rank_device(config.device, env)
    if world == 1:
        summary = _predict_single(cases, config, device)
    else:
        import torch.distributed as dist

        dist.init_process_group("gloo", timeout=GATHER_TIMEOUT)
        try:
            LOG.info("rank %d/%d on %s: %d of %d case(s)", rank, world, device, len(shard(cases, rank, world)),
                     len(cases))
            summary = BatchSummary(_gather(predict_rank(cases, config, rank, world, device), world))
        finally:
            dist.destroy_process_group()
    if rank == 0:
        path = write_summary(config.out_dir, summary, world)
        counts = summary.counts
        LOG.info("%d done, %d skipped (output existed), %d failed; summary in %s", counts["done"],
                 counts["skipped"], counts["failed"], path)
        for r in summary.failed:
            LOG.error("failed %s: %s", r.case_id, r.error)
    return summary
