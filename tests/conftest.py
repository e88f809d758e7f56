"""Shared fixtures: the committed real samples, tiny random-weight model folders, grand-challenge input folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"

os.environ.setdefault("nnUNet_compile", "f")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def porcine_dir() -> Path:
    return SAMPLES / "porcine"


@pytest.fixture(scope="session")
def tiny_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight training results folder (2 folds) at the porcine sample's spacing, small patch."""
    from synthct.network.scaffold import random_training_results

    return random_training_results(tmp_path_factory.mktemp("results") / "Dataset900", task="mri",
                                   features=(4, 8, 16), patch_size=(16, 64, 64), spacing=(2.5, 1.0, 1.0),
                                   folds=(0, 1))


@pytest.fixture(scope="session")
def tiny_model(tiny_results: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The exported inference model folder of :func:`tiny_results`."""
    from synthct.network.export import export_model

    return export_model(tiny_results, tmp_path_factory.mktemp("models") / "mri-tiny")


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


@pytest.fixture
def porcine_images(porcine_dir: Path) -> tuple[sitk.Image, sitk.Image]:
    return sitk.ReadImage(str(porcine_dir / "mr.mha")), sitk.ReadImage(str(porcine_dir / "mask.mha"))


def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
