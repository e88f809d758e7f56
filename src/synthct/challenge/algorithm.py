"""The grand-challenge algorithm: load → validate → predict → write, with paths passed in.

Failure policy: every problem ends as one :class:`CaseError` line (file + problem), a non-zero exit code and an
output folder with nothing new in it; the sCT is written to a temporary file and renamed into place.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from synthct.challenge import diagnostics, model_root
from synthct.challenge.contract import DEFAULT_INPUT_ROOT, DEFAULT_OUTPUT_ROOT, MASK_DIR, OUTPUT_DIR
from synthct.challenge.errors import CaseError
from synthct.challenge.inputs import Case, load_case
from synthct.challenge.routing import Route, resolve_route
from synthct.inference.budget import TimeBudget, budget_seconds, process_start
from synthct.io.image import write_image_atomic
from synthct.paths import settings

if TYPE_CHECKING:
    from synthct.inference.predictor import SyntheticCTPredictor

LOG = logging.getLogger("synthct.challenge")


def _prepare_output(output_root: Path, protect: Sequence[Path] = ()) -> tuple[Path, list[Path]]:
    """Create the output folder; return it and the folders this call created (removed again on failure, if empty).

    ``protect``: the input's image folders; the output folder must not resolve into one of them.

    Raises:
        CaseError: the folder is not writable, or it resolves into an input folder (e.g. ``images/synthetic-ct`` a
            symlink to ``images/mri``), where writing would overwrite the input.
    """
    out_dir = output_root / OUTPUT_DIR
    for folder in protect:
        if _inside(out_dir, folder):
            raise CaseError(out_dir, f"output folder resolves to {out_dir.resolve()}, inside the input folder "
                            f"{folder}: writing there would overwrite the input; nothing written")
    created = []
    for folder in reversed([out_dir, *out_dir.parents]):
        if not folder.exists():
            created.append(folder)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".synthct-write-test.", dir=out_dir)  # unique: runs may share a root
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        _remove_created(created)
        raise CaseError(out_dir, f"output folder is not writable ({exc.strerror or exc})") from None
    return out_dir, created


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` (resolved; it need not exist) is ``root`` or lies under it (resolved)."""
    resolved, base = path.resolve(), root.resolve()
    return resolved == base or base in resolved.parents


def _remove_created(created: list[Path]) -> None:
    """Remove the folders this run created, deepest first, only while empty: another run sharing the output root
    may have written into them."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (someone else's result) or already gone: keep it and its parents


def load_predictor(route: Route, task: str) -> SyntheticCTPredictor:
    """Load the model folder of ``route`` once (reused for every case of its task and region).

    Raises:
        CaseError: the model does not load or is for another task.
    """
    from synthct.inference.predictor import SyntheticCTPredictor  # heavy: torch + networks

    try:
        predictor = SyntheticCTPredictor(route.model_dir, route.options)
    except (ValueError, FileNotFoundError) as exc:
        raise CaseError(route.model_dir, f"cannot load model ({exc})") from None
    if task != predictor.manifest.task:
        raise CaseError(route.model_dir, f"model is for task {predictor.manifest.task!r}, case is {task!r}")
    return predictor


def synthesise(predictor: SyntheticCTPredictor, case: Case, out_path: Path, budget: TimeBudget | None = None) -> Path:
    """Predict the sCT of a validated case and write it atomically to ``out_path`` (its folder must exist).

    ``budget``: the case's time budget (may drop TTA, then folds, after the first tile batch; logged).

    Raises:
        CaseError: the resampled grid would be unreasonable, the prediction is not finite, or the output cannot be
            written.
    """
    from synthct.inference.grid import GridError

    try:
        hu = predictor.predict(case.image, case.mask, case.geometry.spacing_zyx, budget=budget)
    except GridError as exc:
        raise CaseError(case.image_path, str(exc)) from None
    bad = int(np.count_nonzero(~np.isfinite(hu)))
    if bad:
        raise CaseError(case.image_path, f"the prediction has {bad} NaN or infinite voxels of {hu.size} (input "
                        f"range [{case.image.min()}, {case.image.max()}]); nothing written")
    try:
        return write_image_atomic(hu, case.geometry, out_path)
    except (OSError, RuntimeError) as exc:
        raise CaseError(out_path, f"cannot write output ({exc})") from None


#: The signals that stop a case cleanly: the platform's time-out (SIGTERM), Ctrl-C, a closed terminal (SIGHUP).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Interrupted(SystemExit):
    """SIGTERM/SIGINT/SIGHUP during a case: exits with the shell's code 128 + signal (143 / 130 / 129) after the
    clean-up."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signal_name = signal.Signals(signum).name


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """Turn SIGTERM (the platform's time-out), SIGINT and SIGHUP into :class:`Interrupted` while a case runs.

    Installed per call, only in the main thread (where Python delivers signals), and restored afterwards; Python runs
    the handler between bytecodes, so a signal arriving inside one long native call acts once that call returns.
    After a first signal the process is on its way out with 128 + that signal: further ones are ignored until it has
    exited (restoring the default handlers would let a second SIGTERM kill it with the signal's own status).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    fired: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if not fired:  # a second signal must not cut the clean-up short
            fired.append(signum)
            raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, signal.SIG_IGN if fired else old)


def run_case(input_root: Path, output_root: Path, models_json: Path, device: str = "auto", *,
             root: Path | None = None, time_budget: float | None = None, started: float | None = None) -> Path:
    """Synthesise the CT of the case under ``input_root`` into ``output_root``; returns the written file.

    ``root``: the folder the model paths of ``models_json`` are relative to (default: the folder holding
    ``resources/``). ``time_budget``: seconds for the whole case counted from ``started`` (default: the process's
    start); None falls back to models.json's ``time_budget``, then $SYNTHCT_TIME_BUDGET; 0 = no budget.

    SIGTERM/SIGINT/SIGHUP while it runs remove what it wrote (as any failure does) and raise :class:`Interrupted`
    (a ``SystemExit`` with code 143/130/129).

    Raises:
        CaseError: bad input, no model, non-finite prediction, unwritable output (one line: file and problem).
    """
    with _signals_raise():
        try:
            return _run_case(input_root, output_root, models_json, device, root, time_budget, started)
        except Interrupted as exc:
            LOG.error("%s: stopped by %s (exit %s); nothing written", input_root, exc.signal_name, exc.code)
            raise


def _run_case(input_root: Path, output_root: Path, models_json: Path, device: str, root: Path | None,
              time_budget: float | None, started: float | None) -> Path:
    t0 = time.perf_counter()
    case = load_case(input_root)
    LOG.info("case %s: task %s, region %s, size %s, spacing %s mm", case.image_path.name, case.task, case.region,
             case.geometry.size, tuple(round(s, 3) for s in case.geometry.spacing))
    route = resolve_route(models_json, case.task, case.region, device, root=root)
    try:
        seconds = budget_seconds(time_budget, route.options.time_budget)
    except ValueError as exc:
        raise CaseError(models_json, str(exc)) from None
    budget = None if seconds is None else TimeBudget(seconds, process_start() if started is None else started)
    out_dir, created = _prepare_output(output_root, (case.image_path.parent, input_root / MASK_DIR))
    path = None
    try:
        path = synthesise(load_predictor(route, case.task), case, out_dir / case.output_name, budget)
        LOG.info("wrote %s in %.1f s", path, time.perf_counter() - t0)
        if budget is not None:
            budget.finish()
    except BaseException:
        if path is not None:  # e.g. a signal right after the rename
            path.unlink(missing_ok=True)
        _remove_created(created)
        raise
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="SynthRAD2025 grand-challenge entry point: MRI/CBCT → synthetic CT.")
    parser.add_argument("--input", type=Path, default=Path(DEFAULT_INPUT_ROOT), help="input root (default /input)")
    parser.add_argument("--output", type=Path, default=Path(DEFAULT_OUTPUT_ROOT), help="output root (default /output)")
    parser.add_argument("--models", type=Path, default=None, help="models.json (default: /opt/ml/model/models.json "
                        "or /opt/ml/model/resources/models.json from the model tarball, else resources/models.json "
                        "next to process.py)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if usable; refuses the CPU fallback when "
                        "NVIDIA devices are visible but CUDA is not) | cpu | cuda | cuda:N")
    parser.add_argument("--time-budget", type=_seconds, default=None, metavar="SECONDS",
                        help="per-case time budget counted from the process start; after the first tile batch TTA, "
                        "then folds are dropped if the projection exceeds it (default: models.json time_budget, "
                        "else $SYNTHCT_TIME_BUDGET, else none; 0 = none)")
    parser.add_argument("--check-models", action="store_true", help="only load every model routed for the task "
                        "($SYNTHCT_TASK, else every routed task) and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
    return parser


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds, got {text!r}")
    return value


def _platform_dir() -> Path:
    """/opt/ml/model, or $SYNTHCT_PLATFORM_MODEL_DIR (tests, other platforms)."""
    return Path(settings().platform_model_dir or model_root.PLATFORM_MODEL_DIR)


def main(argv: Sequence[str] | None = None, app_root: Path | None = None) -> int:
    """Run one case; return the exit code (0 success, 1 case error, 2 internal error or unusable device)."""
    started = process_start()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        device = diagnostics.select_device(args.device)
    except diagnostics.DeviceError as exc:
        LOG.error("%s", exc)
        return 2
    try:
        found = model_root.find_model_root(app_root or Path.cwd(), _platform_dir(), args.models)
        LOG.info("models: %s (%s; model paths relative to %s)", found.models_json, found.source, found.root)
        if args.check_models:
            task = settings().task
            tasks = [task] if task else model_root.routed_tasks(found.models_json)
            for line in model_root.check_models(found, tasks):
                LOG.info("loads: %s", line)
            for warning in filter(None, (model_root.demo_warning(found, t) for t in tasks)):
                LOG.warning("%s", warning)
            return 0
        run_case(args.input, args.output, found.models_json, str(device), root=found.root,
                 time_budget=args.time_budget, started=started)
    except CaseError as exc:
        LOG.error("%s", exc)
        return 1
    except Exception as exc:  # internal error: still one line unless --verbose
        LOG.error("internal error: %s: %s", type(exc).__name__, exc, exc_info=args.verbose)
        return 2
    return 0
