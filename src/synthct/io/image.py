"""Image I/O with SimpleITK: numpy (Z, Y, X) arrays plus a :class:`Geometry`; atomic writes.

SimpleITK orders size/spacing/origin as (x, y, z); numpy arrays from ``GetArrayFromImage`` are (z, y, x).
:class:`Geometry` keeps SimpleITK's order (it is what gets copied back onto outputs) and offers ``spacing_zyx``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from synthct.typing import PathLike, SpacingZYX


@dataclass(frozen=True)
class Geometry:
    """Physical grid of an image, in SimpleITK (x, y, z) order; spacing and origin in mm."""

    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image: sitk.Image) -> Geometry:
        return cls(tuple(image.GetSize()), tuple(image.GetSpacing()), tuple(image.GetOrigin()),
                   tuple(image.GetDirection()))

    @property
    def spacing_zyx(self) -> SpacingZYX:
        x, y, z = self.spacing
        return (z, y, x)

    def apply(self, image: sitk.Image) -> sitk.Image:
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def mismatch(self, other: Geometry, tol_mm: float = 1e-3, tol_dir: float = 1e-4) -> str | None:
        """A description of the first difference from ``other`` beyond the tolerances, or None if they match."""
        if self.size != other.size:
            return f"size {self.size} vs {other.size}"
        for name, a, b, tol in (("spacing", self.spacing, other.spacing, tol_mm),
                                ("origin", self.origin, other.origin, tol_mm),
                                ("direction", self.direction, other.direction, tol_dir)):
            if not np.allclose(a, b, rtol=0, atol=tol):
                return f"{name} {tuple(round(v, 4) for v in a)} vs {tuple(round(v, 4) for v in b)}"
        return None


def read_image(path: PathLike) -> tuple[np.ndarray, Geometry, sitk.Image]:
    """Read a 3-D scalar image. Returns (array (Z, Y, X) in its stored dtype, geometry, the SimpleITK image).

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable file, not 3-D, or more than one component per voxel.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ValueError(f"{path}: unreadable image ({first[-1] if first else 'SimpleITK error'})") from None
    if image.GetDimension() != 3:
        raise ValueError(f"{path}: expected a 3-D image, got {image.GetDimension()}-D of size {image.GetSize()}")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(f"{path}: expected a scalar image, got {image.GetNumberOfComponentsPerPixel()} components")
    return sitk.GetArrayFromImage(image), Geometry.of(image), image


def write_image_atomic(array: np.ndarray, geometry: Geometry, path: PathLike, compress: bool = True) -> Path:
    """Write ``array`` (Z, Y, X) with ``geometry`` to ``path`` via a temporary file in the same folder + rename.

    A failure leaves no file at ``path`` and no temporary file behind.
    """
    path = Path(path)
    expected = tuple(reversed(geometry.size))
    if array.shape != expected:
        raise ValueError(f"array shape {array.shape} does not match geometry size (z, y, x) {expected}")
    image = geometry.apply(sitk.GetImageFromArray(array))
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        sitk.WriteImage(image, tmp_name, useCompression=compress)
        os.chmod(tmp_name, 0o644)  # mkstemp creates 0600; outputs are plain world-readable files
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path
