"""Inputs of a dose case: the working grid, the body, the target and the OARs, validated with one clear error each.

Pure numpy + SimpleITK (no pyRadPlan). The CT and every sCT are resampled (linearly, HU clipped to [-1024, 3071]) to
the *working grid*: the CT's grid with each spacing raised to at least ``ct_resolution_mm`` (never refined), same
origin and direction. Masks go to that grid by linear interpolation of the 0/1 mask and a 0.5 threshold. Densities
outside the body are ignored by the engine (the body is pyRadPlan's EXTERNAL structure).

Target: a given mask (``--target``), a label of the structure map (``--target-label``; default the first label named
PTV, CTV, GTV or ROI), or, without either, a **synthetic** sphere of ``radius_mm`` at the centroid of the body (or of
``--target-label``'s structure when given without a label map hit) intersected with the body; every output marks it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

LOG = logging.getLogger(__name__)

#: HU range of CT and sCT (the SynthRAD2025 clip).
HU_RANGE: tuple[float, float] = (-1024.0, 3071.0)
#: Label names taken as the target when ``--target-label`` is not given (first match, case-insensitive prefix).
TARGET_NAMES: tuple[str, ...] = ("PTV", "CTV", "GTV", "ROI")
#: Fewest target voxels on the working grid.
MIN_TARGET_VOXELS: int = 8


class DoseInputError(ValueError):
    """A dose case cannot be set up from its inputs (the message names the file and the problem)."""


@dataclass
class CaseStructures:
    """Structures of one case on the working grid.

    Attributes:
        reference: an image of the working grid (its geometry is what every resampled image gets).
        body: (Z, Y, X) bool body mask.
        target: (Z, Y, X) bool target mask.
        oars: OAR name → (Z, Y, X) bool mask (possibly empty dict).
        target_name: the target's name (``PTV (synthetic)`` for an automatic one).
        target_info: how the target was made (written into every output).
    """

    reference: sitk.Image
    body: np.ndarray
    target: np.ndarray
    oars: dict[str, np.ndarray]
    target_name: str
    target_info: dict[str, object] = field(default_factory=dict)

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        x, y, z = self.reference.GetSpacing()
        return (z, y, x)

    def _image(self, array: np.ndarray) -> sitk.Image:
        image = sitk.GetImageFromArray(array.astype(np.uint8))
        image.CopyInformation(self.reference)
        return image

    def engine_masks(self) -> dict[str, tuple[str, sitk.Image]]:
        """name → (pyRadPlan VOI type, uint8 image) of target, OARs and body, for :mod:`synthct.dose.engine`."""
        masks = {self.target_name: ("TARGET", self._image(self.target))}
        masks.update({name: ("OAR", self._image(m)) for name, m in self.oars.items()})
        masks["BODY"] = ("EXTERNAL", self._image(self.body))
        return masks


def working_grid(ct: sitk.Image, resolution_mm: float) -> sitk.Image:
    """An empty float32 image on the CT's grid with each spacing raised to ``resolution_mm`` (same origin/direction)."""
    spacing = [max(s, resolution_mm) for s in ct.GetSpacing()]
    size = [max(1, int(np.floor((n - 1) * s / ns + 1e-6)) + 1)
            for n, s, ns in zip(ct.GetSize(), ct.GetSpacing(), spacing, strict=True)]
    ref = sitk.Image(size, sitk.sitkFloat32)
    ref.SetSpacing(spacing)
    ref.SetOrigin(ct.GetOrigin())
    ref.SetDirection(ct.GetDirection())
    return ref


def resample_hu(image: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """``image`` (HU) linearly resampled onto ``reference``'s grid, float32, clipped to :data:`HU_RANGE`."""
    out = sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), reference, sitk.Transform(), sitk.sitkLinear, -1000.0,
                        sitk.sitkFloat32)
    return sitk.Clamp(out, sitk.sitkFloat32, HU_RANGE[0], HU_RANGE[1])


def resample_mask(mask: np.ndarray, source: sitk.Image, reference: sitk.Image) -> np.ndarray:
    """A (Z, Y, X) bool mask on ``source``'s grid → bool mask on ``reference``'s grid (linear, >= 0.5)."""
    image = sitk.GetImageFromArray(mask.astype(np.float32))
    image.CopyInformation(source)
    out = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out) >= 0.5


def read_label_names(path: Path) -> dict[int, str]:
    """Label value → name from a JSON object such as ``{"1": "Bowel_sm", "4": "PTV"}``."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DoseInputError(f"{path}: cannot read the structure names ({exc})") from exc
    if not isinstance(raw, dict) or not raw:
        raise DoseInputError(f"{path}: expected a JSON object of label value -> name, got {type(raw).__name__}")
    names: dict[int, str] = {}
    for key, value in raw.items():
        if not (str(key).isdigit() and int(key) > 0 and isinstance(value, str) and value.strip()):
            raise DoseInputError(f"{path}: entry {str(key)[:40]!r}: {str(value)[:40]!r} is not 'positive integer': "
                                 "'name'")
        names[int(key)] = value.strip()
    return names


def _pick_target(names: dict[int, str], wanted: str | None, source: str) -> int:
    if wanted is not None:
        hits = [v for v, n in names.items() if n.lower() == wanted.lower()]
        if not hits:
            raise DoseInputError(f"{source}: no structure named {wanted!r}; it has {', '.join(names.values())}")
        return hits[0]
    for prefix in TARGET_NAMES:
        hits = [v for v, n in sorted(names.items()) if n.upper().startswith(prefix)]
        if hits:
            return hits[0]
    raise DoseInputError(f"{source}: none of its structures ({', '.join(names.values())}) is named like a target "
                         f"({'/'.join(TARGET_NAMES)}); pass --target-label NAME or --target MASK")


def sphere(shape: tuple[int, ...], spacing_zyx: tuple[float, float, float], centre_zyx: np.ndarray,
           radius_mm: float) -> np.ndarray:
    """Bool (Z, Y, X) ball of ``radius_mm`` around ``centre_zyx`` (voxel coordinates)."""
    zz, yy, xx = np.indices(shape, dtype=np.float64)
    sz, sy, sx = spacing_zyx
    cz, cy, cx = centre_zyx
    return ((zz - cz) * sz) ** 2 + ((yy - cy) * sy) ** 2 + ((xx - cx) * sx) ** 2 <= radius_mm**2


def synthetic_target(body: np.ndarray, spacing_zyx: tuple[float, float, float], radius_mm: float,
                     around: np.ndarray | None = None, around_name: str = "body") -> tuple[np.ndarray, dict]:
    """A sphere of ``radius_mm`` at the centroid of ``around`` (default the body), inside the body."""
    source = body if around is None else around
    centre = np.argwhere(source).mean(axis=0)
    target = sphere(body.shape, spacing_zyx, centre, radius_mm) & body
    info = {"synthetic": True, "how": f"sphere of radius {radius_mm:g} mm at the centroid of the {around_name}, "
            "inside the body", "centre_voxel_zyx": [round(float(c), 2) for c in centre]}
    return target, info


def build_structures(
    ct: sitk.Image, body: np.ndarray, *, resolution_mm: float, labels: np.ndarray | None = None,
    names: dict[int, str] | None = None, target: np.ndarray | None = None, target_label: str | None = None,
    radius_mm: float = 25.0, source: str = "structures",
) -> CaseStructures:
    """The case's structures on the working grid. ``body``, ``labels`` and ``target`` are (Z, Y, X) arrays on the
    CT's grid (the caller checked the geometry); ``names`` maps label values of ``labels`` to names."""
    ref = working_grid(ct, resolution_mm)
    body_w = resample_mask(body > 0, ct, ref)
    if not body_w.any():
        raise DoseInputError(f"{source}: the body mask is empty")
    oars: dict[str, np.ndarray] = {}
    info: dict[str, object] = {"synthetic": False}
    target_name = "PTV"
    target_w: np.ndarray | None = None
    if labels is not None:
        names = names or {}
        unnamed = sorted(set(np.unique(labels[labels > 0]).tolist()) - set(names))
        if unnamed:
            raise DoseInputError(f"{source}: label value(s) {unnamed[:10]} have no name in the structure names")
        chosen = None if target is not None else _pick_target(names, target_label, source)
        for value, name in sorted(names.items()):
            mask = resample_mask(labels == value, ct, ref)
            if value == chosen:
                target_w, target_name = mask, name
                info = {"synthetic": False, "how": f"label {value} ({name}) of the structure map"}
            elif mask.any():
                oars[name] = mask
            else:
                LOG.warning("%s: structure %s has no voxel on the working grid; not used", source, name)
    if target is not None:
        target_w, info = resample_mask(target > 0, ct, ref), {"synthetic": False, "how": "the --target mask"}
    if target_w is None:
        target_w, info = synthetic_target(body_w, _spacing_zyx(ref), radius_mm)
        target_name = "PTV (synthetic)"
    _check_target(target_w, body_w, source)
    target_w &= body_w
    return CaseStructures(ref, body_w, target_w, oars, target_name, info)


def _spacing_zyx(image: sitk.Image) -> tuple[float, float, float]:
    x, y, z = image.GetSpacing()
    return (z, y, x)


def _check_target(target: np.ndarray, body: np.ndarray, source: str) -> None:
    n = int(np.count_nonzero(target))
    if n < MIN_TARGET_VOXELS:
        raise DoseInputError(f"{source}: the target has {n} voxel(s) on the working grid (needs >= "
                             f"{MIN_TARGET_VOXELS}): empty or too small")
    inside = int(np.count_nonzero(target & body))
    if inside == 0:
        raise DoseInputError(f"{source}: the target lies outside the body mask ({n} voxels, none inside)")
    if inside < n:
        LOG.warning("%s: %d of %d target voxels lie outside the body and are dropped", source, n - inside, n)
