"""Find, read and validate one grand-challenge case: image, body mask and region.

Every check raises :class:`~synthct.challenge.errors.CaseError` naming the file and the problem; nothing is predicted
before all of them pass.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthct.challenge.contract import MASK_DIR, REGION_FILE
from synthct.challenge.errors import CaseError
from synthct.contracts import synthrad
from synthct.contracts.synthrad import IMAGE_SUFFIXES
from synthct.inference.grid import MAX_GRID_VOXELS
from synthct.io.image import Geometry, printable_path, read_image

LOG = logging.getLogger(__name__)
#: region.json holds one short JSON string ("Head and Neck"); anything longer is refused before it is parsed.
MAX_REGION_BYTES = 4096
#: Input voxels accepted, checked from the header before reading (the working-grid bound of synthct.inference.grid).
MAX_INPUT_VOXELS = MAX_GRID_VOXELS
#: Largest deviation of the direction matrix D from a rotation (|D·Dᵀ − I|, per element) that is accepted.
DIRECTION_TOLERANCE = 1e-3


@dataclass
class Case:
    """One validated case. ``image`` and ``mask`` are (Z, Y, X); ``mask`` is bool with at least one voxel set."""

    task: str
    region: str
    image_path: Path
    image: np.ndarray
    mask: np.ndarray
    geometry: Geometry

    @property
    def output_name(self) -> str:
        """Output file name: the input's name with a ``.mha`` suffix."""
        name = self.image_path.name
        for suffix in IMAGE_SUFFIXES:
            if name.endswith(suffix):
                return name[: -len(suffix)] + ".mha"
        return name + ".mha"


def _single_file(folder: Path) -> Path:
    if not folder.is_dir():
        raise CaseError(folder, "folder not found")
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    if len(files) != 1:
        names = ", ".join(p.name for p in files) or "none"
        raise CaseError(folder, f"expected exactly one image file, found {len(files)} ({names})")
    if not files[0].is_file() or not files[0].name.endswith(IMAGE_SUFFIXES):
        raise CaseError(files[0], f"not an image file with a suffix in {IMAGE_SUFFIXES}")
    return files[0]


def detect_task(input_root: Path) -> tuple[str, Path]:
    """The task decided by which image folder exists (exactly one of images/mri, images/cbct) and its file."""
    present = [task for task in synthrad.TASKS if (input_root / task.input_dir).is_dir()]
    if len(present) != 1:
        wanted = " or ".join(t.input_dir for t in synthrad.TASKS)
        names = [t.name for t in present]
        raise CaseError(input_root, f"expected exactly one of {wanted}, found {len(present)} ({names or 'none'})")
    return present[0].name, _single_file(input_root / present[0].input_dir)


def read_region(input_root: Path) -> str:
    """The region code (``synthrad.REGIONS``) from region.json, which holds one JSON string such as "Head and Neck"
    (or ``{"region": "Head and Neck"}``)."""
    path = input_root / REGION_FILE
    value = _region_json(path)
    if isinstance(value, dict) and list(value) == ["region"]:  # tolerate {"region": "..."}
        value = value["region"]
    if not isinstance(value, str):
        raise CaseError(path, f"expected one JSON string such as \"Head and Neck\" (or {{\"region\": \"...\"}}), "
                        f"got a JSON {_json_type(value)}: {_short(json.dumps(value))}")
    codes = synthrad.region_names()
    if value not in codes:
        raise CaseError(path, f"unknown region {_short(repr(value))}; expected one of {list(codes)}")
    return codes[value]


def _region_json(path: Path) -> object:
    """The parsed JSON of region.json: a regular, readable file of at most MAX_REGION_BYTES (CaseError otherwise)."""
    if not path.exists():
        raise CaseError(path, "file not found")
    if not path.is_file():
        raise CaseError(path, "not a regular file (a device, folder or link to one); expected a small JSON file")
    try:
        with path.open("rb") as f:
            data = f.read(MAX_REGION_BYTES + 1)
    except OSError as exc:
        raise CaseError(path, f"cannot read the file ({exc.strerror or exc})") from None
    if len(data) > MAX_REGION_BYTES:
        raise CaseError(path, f"more than {MAX_REGION_BYTES} bytes; expected one short JSON string such as "
                        "\"Head and Neck\"")
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, int digits, deep nesting
        raise CaseError(path, f"not valid JSON ({_short(str(exc) or type(exc).__name__)})") from None


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read(path: Path) -> tuple[np.ndarray, Geometry]:
    try:
        array, geometry, _ = read_image(path, max_voxels=MAX_INPUT_VOXELS)
    except (ValueError, FileNotFoundError) as exc:
        text = str(exc)
        for prefix in (f"{printable_path(path)}: ", f"{path}: "):
            text = text.removeprefix(prefix)
        raise CaseError(path, text) from None
    _check_direction(path, geometry)
    return array, geometry


def _check_direction(path: Path, geometry: Geometry) -> None:
    """The direction matrix must be a rotation (orthonormal axes): a sheared grid is no scanner's and would be copied
    onto the output."""
    direction = np.asarray(geometry.direction, dtype=np.float64).reshape(3, 3)
    error = float(np.abs(direction @ direction.T - np.eye(3)).max())
    if error > DIRECTION_TOLERANCE:
        rows = "; ".join(" ".join(f"{v:.4g}" for v in row) for row in direction)
        raise CaseError(path, f"direction matrix [{rows}] is not a rotation (axes not orthonormal, deviation "
                        f"{error:.3g}); a sheared or scaled grid is not supported")


def _check_image(path: Path, image: np.ndarray) -> None:
    if not np.issubdtype(image.dtype, np.number) or np.issubdtype(image.dtype, np.complexfloating):
        raise CaseError(path, f"unsupported voxel type {image.dtype}")
    if np.issubdtype(image.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(image)))
        if bad:
            raise CaseError(path, f"{bad} voxels are NaN or infinite")


def _check_mask(path: Path, mask: np.ndarray) -> np.ndarray:
    """The body (bool) of a mask holding 0 = outside and one other positive value = body (1, 255, ...)."""
    if np.issubdtype(mask.dtype, np.floating) and not np.all(np.isfinite(mask)):
        raise CaseError(path, "mask contains NaN or infinite values")
    values = np.unique(mask)
    body_values = values[values != 0]
    if body_values.size > 1 or (body_values.size == 1 and body_values[0] < 0):
        shown = values[:6].tolist()
        raise CaseError(path, f"mask is not binary: values {shown}{' ...' if values.size > 6 else ''}; expected 0 "
                        "(outside) and one positive value (body); convert it with e.g. SimpleITK "
                        "sitk.Cast(mask > 0, sitk.sitkUInt8) if every nonzero voxel is body")
    if not body_values.size:
        raise CaseError(path, "mask is empty (no body voxel)")
    if body_values[0] != 1:
        LOG.info("mask %s: body value %s (not 1); every voxel with that value is body", path.name,
                 body_values[0].item())
    return mask != 0


def load_pair(task: str, region: str, image_path: Path, mask_path: Path) -> Case:
    """Read and validate one image + body mask pair of a known task and region (any folder layout)."""
    image, geometry = _read(image_path)
    _check_image(image_path, image)
    mask, mask_geometry = _read(mask_path)
    problem = geometry.mismatch(mask_geometry)
    if problem:
        raise CaseError(mask_path, f"mask grid differs from the image {image_path.name}: {problem}")
    body = _check_mask(mask_path, mask)
    return Case(task=task, region=region, image_path=image_path, image=image, mask=body, geometry=geometry)


def load_case(input_root: Path) -> Case:
    """Find, read and validate the case under ``input_root`` (grand-challenge layout)."""
    task, image_path = detect_task(input_root)
    mask_path = _single_file(input_root / MASK_DIR)
    region = read_region(input_root)
    return load_pair(task, region, image_path, mask_path)
