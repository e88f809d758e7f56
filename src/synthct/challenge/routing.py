"""``resources/models.json``: which model folder and inference settings serve each (task, region).

Format (version 1)::

    {"version": 1,
     "models": {"mri":  {"HN": {"model": "weights/mri/HN", "folds": [0], "step": 0.3, "blend": "mean",
                                "tta": false, "accel": {}, "time_budget": 900, "note": "..."}, "TH": {...},
                         "AB": {...}},
                "cbct": {...}}}

``model`` paths are relative to the application root: the folder that holds ``resources/`` (so the same file works in
the repository and under /opt/app in the image), or the model root that :mod:`synthct.challenge.model_root` passes
(e.g. ``/opt/ml/model``). Only ``model`` is required; the rest default to the paper's settings.
``accel`` holds the opt-in tile-engine switches of :class:`~synthct.inference.accel.AccelOptions` (e.g.
``{"warmup": true, "channels_last": true}``); unknown keys are refused. ``time_budget`` (seconds per case, optional)
is the per-case time budget of :mod:`synthct.inference.budget`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthct.challenge.errors import CaseError
from synthct.inference.accel import AccelOptions
from synthct.inference.predictor import InferenceOptions
from synthct.network.manifest import parse_fold

ROUTING_VERSION = 1


@dataclass(frozen=True)
class Route:
    """The model folder and inference options for one (task, region)."""

    model_dir: Path
    options: InferenceOptions
    note: str = ""


def entry_options(entry: dict[str, Any], device: str) -> InferenceOptions:
    """The inference options of one models.json entry on ``device`` (raises ValueError on a bad setting)."""
    folds = entry.get("folds")
    return InferenceOptions(
        step=float(entry.get("step", 0.3)),
        blend=str(entry.get("blend", "mean")),
        tta=bool(entry.get("tta", False)),
        folds=None if folds is None else tuple(parse_fold(f) for f in folds),
        tile_batch=int(entry.get("tile_batch", 0)),
        device=device,
        accel=AccelOptions.from_json(entry.get("accel")),
        time_budget=None if entry.get("time_budget") is None else float(entry["time_budget"]),
    )


def resolve_route(models_json: Path, task: str, region: str, device: str = "auto",
                  root: Path | None = None) -> Route:
    """Look up (task, region) in ``models_json``. Raises CaseError naming the file when there is no usable entry.

    ``model`` paths are relative to ``root`` (default: the folder holding ``resources/``, i.e. the file's grandparent).
    """
    if not models_json.is_file():
        raise CaseError(models_json, "model routing file not found")
    try:
        data = json.loads(models_json.read_text())
    except json.JSONDecodeError as exc:
        raise CaseError(models_json, f"not valid JSON ({exc})") from None
    if data.get("version") != ROUTING_VERSION:
        raise CaseError(models_json, f"unsupported version {data.get('version')!r}, expected {ROUTING_VERSION}")
    entry = data.get("models", {}).get(task, {}).get(region)
    if not isinstance(entry, dict) or "model" not in entry:
        raise CaseError(models_json, f"no model for task {task!r} and region {region!r}")
    model_dir = ((root or models_json.resolve().parent.parent) / entry["model"]).resolve()
    if not (model_dir / "synthct.json").is_file():
        raise CaseError(model_dir, f"model folder for task {task!r}, region {region!r} has no synthct.json")
    try:
        options = entry_options(entry, device)
    except (TypeError, ValueError) as exc:
        raise CaseError(models_json, f"bad settings for {task}/{region}: {exc}") from None
    return Route(model_dir=model_dir, options=options, note=str(entry.get("note", "")))
