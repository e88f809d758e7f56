"""Image I/O with SimpleITK: numpy (Z, Y, X) arrays plus a :class:`Geometry`; atomic writes.

SimpleITK orders size/spacing/origin as (x, y, z); numpy arrays from ``GetArrayFromImage`` are (z, y, x).
:class:`Geometry` keeps SimpleITK's order (it is what gets copied back onto outputs) and offers ``spacing_zyx``.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from synthct.io.integrity import check_image_file
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


def itk_problem(exc: BaseException) -> str:
    """SimpleITK's exception text as one line in the user's terms.

    ITK's messages span several lines (``Exception thrown in ... .cxx:145:`` / ``ITK ERROR: Class(0x...): what`` /
    matrix rows / ``Reason: <errno text>``); only the ``what`` matters, and a few are rephrased.
    """
    text = " ".join(str(exc).split())
    text = re.sub(r"^Exception thrown in SimpleITK \S+: \S+:\d+: ", "", text)
    text = re.sub(r"^(ITK ERROR: \w+\(0x[0-9a-f]+\)|sitk::ERROR): ", "", text)
    if "determinant is 0" in text:
        return "singular direction matrix (determinant 0: two image axes are parallel)"
    if text.startswith("Unable to determine ImageIO reader"):
        return "not an image format SimpleITK can read"
    return text or type(exc).__name__


def printable_path(path: PathLike, limit: int = 200) -> str:
    """``path`` for a one-line message: control characters and undecodable bytes escaped, long names shortened."""
    text = str(path).encode("utf-8", "backslashreplace").decode("utf-8")
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return text if len(text) <= limit else text[: limit // 2] + "..." + text[-(limit // 2):]


def _check_name(path: Path) -> None:
    """ITK aborts the process (std::logic_error) on a file name that is not valid UTF-8: refuse it first."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{printable_path(path)}: file name is not valid UTF-8; rename the file") from None


def header_voxels(path: PathLike) -> tuple[int, tuple[int, ...]]:
    """(voxel count, size (x, y, z)) from the file's header only, without reading the voxels.

    Raises:
        ValueError: a file name that is not UTF-8 or a header ITK cannot read (one line).
    """
    path = Path(path)
    _check_name(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise ValueError(f"{path}: unreadable image ({itk_problem(exc)})") from None
    size = tuple(reader.GetSize())
    count = 1
    for n in (*size, reader.GetNumberOfComponents()):
        count *= n
    return count, size


def read_image(path: PathLike, max_voxels: int | None = None) -> tuple[np.ndarray, Geometry, sitk.Image]:
    """Read a 3-D scalar image. Returns (array (Z, Y, X) in its stored dtype, geometry, the SimpleITK image).

    ``max_voxels``: refuse, from the header and before any voxel is read or decompressed, an image with more voxels.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable (including no read permission), truncated or corrupt file, data outside the file (see
            :mod:`synthct.io.integrity`), a file name that is not UTF-8, more than ``max_voxels`` voxels, not 3-D, or
            more than one component per voxel; the message is one line.
    """
    path = Path(path)
    _check_name(path)
    if not path.is_file():
        raise FileNotFoundError(f"{printable_path(path)}: file not found")
    try:
        with path.open("rb"):
            pass
        check_image_file(path)
        if max_voxels is not None:
            count, size = header_voxels(path)
            if count > max_voxels:
                raise ValueError(f"image too large: size {size} (x, y, z) = {count / 1e6:.0f} M voxels by its "
                                 f"header, more than the {max_voxels / 1e6:.0f} M accepted; nothing read")
    except OSError as exc:
        raise ValueError(f"{printable_path(path)}: cannot read the file ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise ValueError(f"{printable_path(path)}: {str(exc).removeprefix(f'{path}: ')}") from None
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise ValueError(f"{path}: unreadable image ({itk_problem(exc)})") from None
    if image.GetDimension() != 3:
        raise ValueError(f"{path}: expected a 3-D image, got {image.GetDimension()}-D of size {image.GetSize()}")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(f"{path}: expected a scalar image, got {image.GetNumberOfComponentsPerPixel()} components")
    return sitk.GetArrayFromImage(image), Geometry.of(image), image


def write_image_atomic(array: np.ndarray, geometry: Geometry, path: PathLike, compress: bool = True) -> Path:
    """Write ``array`` (Z, Y, X) with ``geometry`` to ``path`` via a temporary file in the same folder + rename.

    The file gets the mode any tool's new file gets (0666 minus the umask: 0644 under the usual 022), not the
    temporary file's 0600. A failure leaves no file at ``path`` and no temporary file behind.

    Raises:
        ValueError: ``array`` does not match ``geometry``.
        OSError: the write failed; the message is one line (disk full, file too large, ITK's reason).
    """
    path = Path(path)
    expected = tuple(reversed(geometry.size))
    if array.shape != expected:
        raise ValueError(f"array shape {array.shape} does not match geometry size (z, y, x) {expected}")
    image = geometry.apply(sitk.GetImageFromArray(array))
    fd, tmp_name = tempfile.mkstemp(prefix=f".{_short_stem(path)}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp_name, 0o666 & ~_umask())
        try:
            sitk.WriteImage(image, tmp_name, useCompression=compress)
        except RuntimeError as exc:
            raise OSError(_write_problem(exc, path.parent, array.nbytes)) from None
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def _short_stem(path: Path, max_name_bytes: int = 255) -> str:
    """``path``'s stem, shortened so that the temporary ``.<stem>.<8 random>.<suffix>`` fits the 255-byte name limit."""
    room = max_name_bytes - len(os.fsencode(path.suffix)) - 10
    stem = path.stem
    while len(os.fsencode(stem)) > room:
        stem = stem[:-1]
    return stem


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_problem(exc: RuntimeError, folder: Path, nbytes: int) -> str:
    """One line on why SimpleITK could not write into ``folder`` (``nbytes``: the uncompressed voxel bytes)."""
    text = itk_problem(exc)
    reason = re.search(r"Reason: (.*)$", text)
    reason_text = reason.group(1) if reason else text
    free = shutil.disk_usage(folder).free
    if reason_text == os.strerror(errno.ENOSPC) or free < nbytes // 4:
        return (f"disk full: {free / 1e6:.1f} MB free in {folder}, the image holds {nbytes / 1e6:.1f} MB "
                "uncompressed")
    if reason_text == os.strerror(errno.EFBIG):
        return "file too large for the file system or for this process's file-size limit (ulimit -f)"
    return reason_text


def file_stem(path: Path, suffixes: tuple[str, ...]) -> str | None:
    """``path``'s name without the first of ``suffixes`` it ends with (``1HNA001.nii.gz`` → ``1HNA001``), else None."""
    for suffix in suffixes:
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.name[: -len(suffix)]
    return None


def images_by_stem(folder: Path, suffixes: tuple[str, ...], what: str = "image") -> dict[str, Path]:
    """Stem → image file directly in ``folder`` (hidden files ignored). Raises ValueError when two share a stem."""
    out: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        stem = file_stem(path, suffixes)
        if stem is not None and path.is_file() and not path.name.startswith("."):
            if stem in out:
                raise ValueError(f"two {what} files share the stem {stem!r}: {out[stem]} and {path}")
            out[stem] = path
    return out
