"""Fixtures of the hostile-input tests (test_hostile_input.py, test_hostile_input_more.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import SimpleITK as sitk
from testutils import write_models_json


@pytest.fixture
def app(tmp_path: Path, tiny_model: Path) -> Path:
    root = tmp_path / "app"
    write_models_json(root, tiny_model)
    return root


@pytest.fixture
def small(porcine_images) -> tuple[sitk.Image, sitk.Image]:
    return tuple(im[:, :, :20] for im in porcine_images)


@pytest.fixture
def tile(porcine_images) -> tuple[sitk.Image, sitk.Image]:
    """One sliding-window tile of the tiny model (16 × 64 × 64 voxels, partly outside the body): fast predictions."""
    return tuple(im[40:104, 0:64, 10:26] for im in porcine_images)
