"""Where process.py finds its routing file and model folders: the platform's model tarball, else the image.

grand-challenge uploads the weights as a separate *Model* (``model.tar.gz``, made with ``tar -czf model.tar.gz -C
model .``) and extracts it to ``/opt/ml/model/`` (read-only for the algorithm) before the container's process starts.
Search order, first hit wins:

1. ``--models FILE`` (explicit);
2. ``/opt/ml/model/models.json``, then ``/opt/ml/model/resources/models.json`` (the model tarball);
3. ``<app root>/resources/models.json`` (weights baked into the image under ``/opt/app``, or the repository).

Model paths inside a models.json are relative to its *model root*: the folder holding ``resources/`` when the file
sits in a ``resources/`` folder, else the file's own folder.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from synthct.challenge.errors import CaseError
from synthct.challenge.routing import resolve_route
from synthct.contracts import synthrad

LOG = logging.getLogger(__name__)
#: Where grand-challenge extracts the algorithm's model tarball.
PLATFORM_MODEL_DIR = Path("/opt/ml/model")


@dataclass(frozen=True)
class ModelRoot:
    """A routing file, the folder its model paths are relative to, and where it came from (for the log)."""

    models_json: Path
    root: Path
    source: str


def root_of(models_json: Path) -> Path:
    """The folder model paths in ``models_json`` are relative to (see the module docstring)."""
    parent = models_json.resolve().parent
    return parent.parent if parent.name == "resources" else parent


def _platform_candidates(platform_dir: Path) -> list[Path]:
    return [platform_dir / "models.json", platform_dir / "resources" / "models.json"]


def _has_entries(folder: Path) -> bool:
    try:
        return folder.is_dir() and any(folder.iterdir())
    except OSError:
        return False


def find_model_root(app_root: Path, platform_dir: Path = PLATFORM_MODEL_DIR,
                    explicit: Path | None = None) -> ModelRoot:
    """The routing file to use (search order in the module docstring).

    Raises:
        CaseError: none found; the one line names every place looked at.
    """
    if explicit is not None:
        return ModelRoot(explicit, root_of(explicit), "--models")
    for candidate in _platform_candidates(platform_dir):
        if candidate.is_file():
            return ModelRoot(candidate, root_of(candidate), "model tarball")
    baked = app_root / "resources" / "models.json"
    if _has_entries(platform_dir):
        LOG.warning("%s holds files but no models.json or resources/models.json: ignoring it", platform_dir)
    if baked.is_file():
        return ModelRoot(baked, root_of(baked), "image")
    looked = ", ".join(str(p) for p in [*_platform_candidates(platform_dir), baked])
    raise CaseError(platform_dir, f"no model routing file found (looked for {looked}): attach the model tarball "
                                  "(export.sh writes model-task<N>.tar.gz) or build the image with baked weights")


def routed_tasks(models_json: Path) -> list[str]:
    """The tasks a routing file has entries for (empty when it is unreadable: resolve_route reports why)."""
    try:
        data = json.loads(models_json.read_text())
    except (OSError, json.JSONDecodeError):
        return []
    models = data.get("models") if isinstance(data, dict) else None
    return sorted(models) if isinstance(models, dict) else []


def check_models(found: ModelRoot, tasks: list[str], device: str = "cpu") -> list[str]:
    """Load every model folder routed for each region of ``tasks``; return one line per distinct folder.

    Raises:
        CaseError: a region without a model, or a model folder that does not load.
    """
    from synthct.network.checkpoint import load_model_folder  # heavy: torch + networks

    if not tasks:
        raise CaseError(found.models_json, "routes no task")
    seen: dict[tuple[Path, tuple | None], list[str]] = {}
    for task in tasks:
        for region in synthrad.region_codes():
            route = resolve_route(found.models_json, task, region, device, root=found.root)
            seen.setdefault((route.model_dir, route.options.folds), []).append(f"{task}/{region}")
    lines = []
    for (model_dir, folds), uses in seen.items():
        try:
            manifest, networks = load_model_folder(model_dir, None if folds is None else list(folds))
        except (ValueError, FileNotFoundError, KeyError, RuntimeError) as exc:
            raise CaseError(model_dir, f"cannot load model ({exc})") from None
        if manifest.task not in {u.split("/")[0] for u in uses}:
            raise CaseError(model_dir, f"model is for task {manifest.task!r}, routed for {', '.join(uses)}")
        lines.append(f"{model_dir}: {len(networks)} fold(s), for {', '.join(uses)}")
    return lines


def demo_routes(found: ModelRoot, task: str) -> dict[str, list[str]]:
    """Model folder → the regions of ``task`` (``task/region``) it serves, for every DEMO or random-weight model.

    A model is a demo when its synthct.json description says so first (:func:`routing_edit.is_demo`).
    """
    from synthct.challenge.routing_edit import is_demo
    from synthct.network.manifest import read_manifest

    demos: dict[str, list[str]] = {}
    for region in synthrad.region_codes():
        route = resolve_route(found.models_json, task, region, "cpu", root=found.root)
        if is_demo(read_manifest(route.model_dir).description):
            demos.setdefault(str(route.model_dir), []).append(f"{task}/{region}")
    return demos


def demo_warning(found: ModelRoot, task: str) -> str:
    """One line naming every region of ``task`` served by a demo model ("" when there is none)."""
    demos = demo_routes(found, task)
    if not demos:
        return ""
    served = "; ".join(f"{', '.join(uses)} ({folder})" for folder, uses in demos.items())
    return f"DEMO models serve {served}: not SynthRAD2025 models; route trained ones (synthct route) before uploading"
