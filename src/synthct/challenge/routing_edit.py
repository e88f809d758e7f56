"""Change and list ``resources/models.json`` from the command line (``synthct route``, ``synthct export --route``).

A change is validated before anything is written: the model folder loads (every routed fold, strictly, as at
inference), its task matches, its settings parse, and the whole new file still resolves for every (task, region).
The old file is copied to ``models.json.bak`` and the new one is written to a temporary file and renamed, so
process.py, the container build and export.sh never see a half-written file.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthct.challenge.errors import CaseError
from synthct.challenge.routing import ROUTING_VERSION, entry_options, resolve_route
from synthct.contracts import synthrad
from synthct.network.manifest import ModelManifest, read_manifest

LOG = logging.getLogger(__name__)
#: Settings kept from an existing entry when a region is re-routed to the same model (the note is not kept).
KEPT_SETTINGS: tuple[str, ...] = ("step", "blend", "tta", "tile_batch")
#: The paper's inference settings: what a newly routed model gets unless its synthct.json says otherwise.
PAPER_SETTINGS: dict[str, Any] = {"step": 0.3, "blend": "mean", "tta": False}
#: What an entry without the key means (as :func:`synthct.challenge.routing.entry_options` reads it).
_DEFAULTS: dict[str, Any] = {**PAPER_SETTINGS, "tile_batch": 0, "folds": "all"}


@dataclass(frozen=True)
class RouteInfo:
    """One row of ``synthct route --list``; ``problem`` is set when the entry does not resolve."""

    task: str
    region: str
    model: str
    demo: bool
    description: str
    settings: str
    problem: str = ""


def app_root(models_json: Path) -> Path:
    """The folder holding ``resources/`` (model paths in models.json are relative to it)."""
    return models_json.resolve().parent.parent


def _read(models_json: Path) -> dict[str, Any]:
    if not models_json.is_file():
        return {"version": ROUTING_VERSION, "models": {}}
    try:
        data = json.loads(models_json.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{models_json}: not valid JSON ({exc})") from None
    if data.get("version") != ROUTING_VERSION:
        raise ValueError(f"{models_json}: unsupported version {data.get('version')!r}, expected {ROUTING_VERSION}")
    return data


def is_demo(description: str) -> bool:
    """Demo or random-weight models say so at the start of their synthct.json description."""
    return description.lstrip().upper().startswith(("DEMO", "RANDOM"))


def _validate_model(model_dir: Path, task: str, region: str, folds: list[Any] | None, force: bool) -> ModelManifest:
    """Load the model as inference will; returns its manifest. Raises ValueError naming the problem."""
    from synthct.network.checkpoint import load_model_folder  # heavy: torch

    manifest = read_manifest(model_dir)
    if manifest.task != task:
        raise ValueError(f"{model_dir} is a {manifest.task!r} model, cannot serve task {task!r}")
    if region not in manifest.regions and not force:
        raise ValueError(f"{model_dir} was trained for region(s) {list(manifest.regions)}, not {region!r} "
                         "(--force routes it anyway)")
    load_model_folder(model_dir, folds)
    return manifest


def model_settings(manifest: ModelManifest) -> tuple[dict[str, Any], str]:
    """The inference settings a newly routed model gets, and where they come from.

    A model folder may carry its own under ``extra.inference`` of its synthct.json (keys of :data:`KEPT_SETTINGS`);
    the rest are the paper's (:data:`PAPER_SETTINGS`).
    """
    own = manifest.extra.get("inference")
    own = {k: v for k, v in own.items() if k in KEPT_SETTINGS} if isinstance(own, dict) else {}
    source = "the model's synthct.json" if own else "the paper's defaults"
    return {**PAPER_SETTINGS, **own}, source


def _changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key old → new`` for every inference setting that differs (missing keys read as the paper's defaults)."""
    pairs = {k: (old.get(k, d), new.get(k, d)) for k, d in _DEFAULTS.items()}
    return [f"{k} {a!r} → {b!r}" for k, (a, b) in pairs.items() if a != b]


def _relative(model_dir: Path, root: Path, task: str) -> str:
    model_dir = model_dir.resolve()
    try:
        rel = model_dir.relative_to(root)
    except ValueError:
        LOG.warning("%s is outside %s: process.py finds it here, but the container bakes only weights/%s/",
                    model_dir, root, task)
        return str(model_dir)
    if rel.parts[:2] != ("weights", task):
        LOG.warning("%s is not under weights/%s/: the container image of this task will not contain it", rel, task)
    return rel.as_posix()


def _write_atomic(models_json: Path, data: dict[str, Any]) -> Path | None:
    """Back up the old file to ``models.json.bak`` and write ``data`` via a temporary file + rename."""
    models_json.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    if models_json.is_file():
        backup = models_json.with_name(models_json.name + ".bak")
        shutil.copy2(models_json, backup)
    tmp = models_json.with_name(f".{models_json.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, models_json)
    finally:
        tmp.unlink(missing_ok=True)
    return backup


def set_route(models_json: Path, task: str, region: str, model_dir: Path, *, folds: list[Any] | None = None,
              settings: dict[str, Any] | None = None, note: str = "", force: bool = False) -> Path | None:
    """Route (task, region) to ``model_dir``; returns the backup of the old file (None when there was none).

    Raises:
        ValueError: unknown task/region, a model that does not load or serves another task, bad settings, or a
            routing file that would no longer resolve.
        FileNotFoundError: no such model folder.
    """
    tasks, regions = synthrad.task_names(), synthrad.region_codes()
    if task not in tasks or region not in regions:
        raise ValueError(f"task must be one of {tasks} and region one of {regions}, got {task!r} {region!r}")
    model_dir = Path(model_dir).resolve()
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model folder {model_dir} does not exist")
    data = _read(models_json)
    manifest = _validate_model(model_dir, task, region, folds, force)
    old = data.setdefault("models", {}).setdefault(task, {}).get(region, {})
    entry: dict[str, Any] = {"model": _relative(model_dir, app_root(models_json), task)}
    if _same_model(old, model_dir, models_json):
        entry.update({k: old[k] for k in KEPT_SETTINGS if k in old})
        source = "the existing entry (same model)"
    else:  # a new model never inherits the old one's blending, step or TTA
        own, source = model_settings(manifest)
        entry.update(own)
    entry.update(settings or {})
    if folds is not None:
        entry["folds"] = folds
    if note:
        entry["note"] = note
    try:
        entry_options(entry, "cpu")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad settings for {task}/{region}: {exc}") from None
    data["models"][task][region] = entry
    _check_resolves(models_json, data)
    backup = _write_atomic(models_json, data)
    LOG.info("%s/%s → %s%s", task, region, entry["model"], " (DEMO model)" if is_demo(manifest.description) else "")
    changed = _changes(old, entry) if old else []
    if changed:
        LOG.info("%s/%s inference settings changed: %s (from %s%s)", task, region, ", ".join(changed), source,
                 " and the command line" if settings else "")
    return backup


def _same_model(old: dict[str, Any], model_dir: Path, models_json: Path) -> bool:
    """Whether the existing entry ``old`` already routes to ``model_dir`` (resolved against the app root)."""
    if "model" not in old:
        return False
    return (app_root(models_json) / str(old["model"])).resolve() == model_dir.resolve()


def _check_resolves(models_json: Path, data: dict[str, Any]) -> None:
    """Every entry of ``data`` must resolve as process.py will resolve it (checked on a temporary copy)."""
    probe = models_json.with_name(f".{models_json.name}.{os.getpid()}.probe")
    probe.parent.mkdir(parents=True, exist_ok=True)
    try:
        probe.write_text(json.dumps(data))
        for task, regions in data["models"].items():
            for region in regions:
                resolve_route(probe, task, region, "cpu")
    except CaseError as exc:
        raise ValueError(f"the new routing would not resolve: {exc}") from None
    finally:
        probe.unlink(missing_ok=True)


def list_routes(models_json: Path) -> list[RouteInfo]:
    """What every (task, region) of ``models_json`` runs (one row each; unrouted ones carry a problem)."""
    rows = []
    for task in synthrad.task_names():
        for region in synthrad.region_codes():
            try:
                route = resolve_route(models_json, task, region, "cpu")
                manifest = read_manifest(route.model_dir)
            except (CaseError, ValueError, FileNotFoundError) as exc:
                rows.append(RouteInfo(task, region, "-", False, "", "", problem=str(exc)))
                continue
            opts = route.options
            settings = f"folds {'all' if opts.folds is None else list(opts.folds)}, step {opts.step}, {opts.blend}"
            settings += ", tta" if opts.tta else ""
            rows.append(RouteInfo(task, region, os.path.relpath(route.model_dir, app_root(models_json)),
                                  is_demo(manifest.description), manifest.description, settings))
    return rows


def route_model(models_json: Path, model_dir: Path) -> list[str]:
    """Route every region the model's synthct.json names (its task) to ``model_dir``; returns the regions."""
    manifest = read_manifest(model_dir)
    for region in manifest.regions:
        set_route(models_json, manifest.task, region, model_dir)
    return list(manifest.regions)
