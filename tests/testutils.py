"""Plain helpers and constants shared by the tests (import as ``from testutils import ...``; never import conftest,
whose module name is ambiguous when several conftest.py files are collected)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"


def write_models_json(app_root: Path, model_dir: Path, tasks: tuple[str, ...] = ("mri",), step: float = 0.5) -> Path:
    """models.json under ``app_root/resources`` routing every region of ``tasks`` to ``model_dir``."""
    entry = {"model": os.path.relpath(model_dir, app_root), "step": step, "blend": "mean", "folds": [0]}
    path = app_root / "resources" / "models.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": 1, "models": {t: dict.fromkeys(("HN", "TH", "AB"), entry)
                                                          for t in tasks}}))
    return path


def make_gc_folder(root: Path, image: sitk.Image, mask: sitk.Image, task: str = "mri",
                   region: str = "Head and Neck", name: str = "case-uuid.mha") -> Path:
    """A grand-challenge input folder: images/<task>/<name>, images/body/<name>, region.json."""
    (root / "images" / task).mkdir(parents=True, exist_ok=True)
    (root / "images" / "body").mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(root / "images" / task / name))
    sitk.WriteImage(mask, str(root / "images" / "body" / name))
    (root / "region.json").write_text(json.dumps(region))
    return root


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def load_script(name: str) -> ModuleType:
    """Import scripts/<name>.py (scripts/ is no package; make_test_cases imports check_output as a sibling)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
