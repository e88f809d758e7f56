"""Fixtures of the metrics tests: the committed real samples as numpy arrays (Z, Y, X) with their spacing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def read(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Array (Z, Y, X) and spacing (z, y, x) mm of an image file."""
    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image), tuple(image.GetSpacing()[::-1])


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def porcine() -> dict[str, np.ndarray]:
    """Real porcine CT (int16 HU), T2 MR (int16) and body mask (uint8), 40 x 186 x 147, spacing 2.5 x 1 x 1 mm."""
    out = {name: read(SAMPLES / "porcine" / f"{name}.mha")[0] for name in ("ct", "mr", "mask")}
    for arr in out.values():
        arr.setflags(write=False)
    return out


@pytest.fixture(scope="session")
def ts_labels() -> tuple[np.ndarray, tuple[float, float, float]]:
    """Real TotalSegmentator ``total`` label map (uint8, 30 x 101 x 122, 3 mm) and its spacing."""
    labels, spacing = read(SAMPLES / "totalsegmentator" / "example_seg.nii.gz")
    labels.setflags(write=False)
    return labels, spacing


@pytest.fixture(scope="session")
def hn_ct() -> dict[str, np.ndarray]:
    """Real head-and-neck CT (int16 HU) and body mask, 128^3 (OpenKBP pt_2)."""
    out = {name: read(SAMPLES / "openkbp_hn" / f"{name}.nii.gz")[0] for name in ("ct", "mask")}
    for arr in out.values():
        arr.setflags(write=False)
    return out
