"""Fixtures of the dose tests: the real held-out pancreas slab (CT, CBCT, body, the clinic's contours) as files."""

from __future__ import annotations

from pathlib import Path

import pytest
import SimpleITK as sitk
from testutils import SAMPLES

#: Axial slices of samples/pancreas_cbct that form the held-out slab (the slab of test/cbct).
SLAB = slice(0, 14)


@pytest.fixture(scope="session")
def slab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder with ct/cbct/mask/labels.mha of the real held-out slab and labels.json (names)."""
    out = tmp_path_factory.mktemp("slab")
    for name in ("ct", "cbct", "mask", "labels"):
        image = sitk.ReadImage(str(SAMPLES / "pancreas_cbct" / f"{name}.mha"))
        sitk.WriteImage(image[:, :, SLAB], str(out / f"{name}.mha"), useCompression=True)
    (out / "labels.json").write_bytes((SAMPLES / "pancreas_cbct" / "labels.json").read_bytes())
    return out
