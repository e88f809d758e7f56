"""Shared fixtures: the committed real samples, tiny random-weight model folders, grand-challenge input folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import SimpleITK as sitk
from testutils import REPO, SAMPLES  # noqa: F401  (shared with the test modules)

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


@pytest.fixture
def porcine_images(porcine_dir: Path) -> tuple[sitk.Image, sitk.Image]:
    return sitk.ReadImage(str(porcine_dir / "mr.mha")), sitk.ReadImage(str(porcine_dir / "mask.mha"))
