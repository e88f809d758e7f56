"""One dose case: a plan per modality on the CT, recomputed on each sCT, scored and written (``synthct dose``).

The plan of each modality is made ONCE per case, whatever the number of sCTs, and optionally cached on disk
(``plan_cache``: the optimised weights, keyed by a hash of the working-grid CT, the structures, the settings and the
HLUT). Every output goes to a staged folder renamed into place only when the whole case succeeded.

Output folder::

    dose_metrics.json               case, target, structures, gamma criteria, one plan per modality, one entry per sCT
    doses/<modality>_ct.mha         the plan's dose on the CT        (Gy, float32, on the input CT grid)
    doses/<modality>_<stem>.mha     the same plan on each sCT
    doses/<modality>_<stem>_gamma.mha  its gamma map (working grid; 2.0 = fails, -1 = below the cut-off)
    qa/<modality>_<stem>.png        CT dose, sCT dose, difference (% Rx), gamma failures; axial/coronal/sagittal
    qa/<modality>_dvh.png           cumulative DVH per structure, CT solid, each sCT dashed
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from synthct.contracts.synthrad import IMAGE_SUFFIXES
from synthct.dose import engine, metrics, report
from synthct.dose.gamma import GammaCriteria, gamma_index, pass_rate
from synthct.dose.settings import PlanSettings
from synthct.dose.structures import CaseStructures, DoseInputError, build_structures, read_label_names, resample_hu
from synthct.io.image import Geometry, file_stem, read_image
from synthct.io.staging import staged_folder

LOG = logging.getLogger(__name__)

#: dose_metrics.json layout version.
METRICS_VERSION: int = 1


@dataclass
class DoseCase:
    """The inputs of one case (paths) and how to plan it.

    Attributes:
        ct: planning CT (HU). scts: stem → sCT path (HU), on the CT's grid. mask: body mask on the CT's grid.
        structures: label map on the CT's grid, with ``structure_names`` (JSON label → name), optional.
        target: binary target mask on the CT's grid, optional (wins over the label map's target).
        settings: one :class:`PlanSettings` per modality to plan.
    """

    case_id: str
    ct: Path
    scts: dict[str, Path]
    mask: Path
    settings: Sequence[PlanSettings]
    structures: Path | None = None
    structure_names: Path | None = None
    target: Path | None = None
    target_label: str | None = None
    target_radius_mm: float = 25.0
    hlut: Path | None = None
    gamma: GammaCriteria = field(default_factory=GammaCriteria)


def stem_of(path: Path) -> str:
    """File name without its image suffix (``sct.nii.gz`` → ``sct``; the project's one ``IMAGE_SUFFIXES``)."""
    return file_stem(path, IMAGE_SUFFIXES) or path.stem


def _read_image_on(path: Path, geometry: Geometry, what: str) -> tuple[np.ndarray, sitk.Image]:
    """(array, image) of ``path``, checked to lie on the CT's grid ``geometry``."""
    try:
        array, geom, image = read_image(path)
    except (OSError, RuntimeError, ValueError) as exc:
        raise DoseInputError(f"{path}: cannot read the {what} ({exc})") from exc
    problem = geometry.mismatch(geom)
    if problem:
        raise DoseInputError(f"{path}: the {what} grid differs from the CT's: {problem} (CT vs {what})")
    return array, image


def _read_on(path: Path, geometry: Geometry, what: str) -> np.ndarray:
    return _read_image_on(path, geometry, what)[0]


def load_structures(case: DoseCase, ct_image: sitk.Image, geometry: Geometry, resolution_mm: float) -> CaseStructures:
    """Body, target and OARs of ``case`` on its working grid (all inputs checked against the CT's grid)."""
    body = _read_on(case.mask, geometry, "body mask")
    labels = _read_on(case.structures, geometry, "structures") if case.structures else None
    if labels is not None and case.structure_names is None:
        raise DoseInputError(f"{case.structures}: --structures needs --structure-names (JSON label -> name)")
    names = read_label_names(case.structure_names) if case.structure_names else None
    target = _read_on(case.target, geometry, "target") if case.target else None
    if target is not None and not (target > 0).any():
        raise DoseInputError(f"{case.target}: the target mask is empty")
    return build_structures(ct_image, body, resolution_mm=resolution_mm, labels=labels, names=names, target=target,
                            target_label=case.target_label, radius_mm=case.target_radius_mm,
                            source=str(case.structures or case.target or case.mask))


def _cache_key(hu: sitk.Image, structures: CaseStructures, settings: PlanSettings, hlut: np.ndarray | None) -> str:
    h = hashlib.sha256()
    h.update(sitk.GetArrayViewFromImage(hu).tobytes())
    h.update(repr((hu.GetSpacing(), hu.GetOrigin(), hu.GetDirection())).encode())
    for name, (kind, mask) in structures.engine_masks().items():
        h.update(f"{name}:{kind}".encode())
        h.update(np.packbits(sitk.GetArrayViewFromImage(mask) > 0).tobytes())
    h.update(json.dumps(settings.to_dict(), sort_keys=True).encode())
    if hlut is not None:
        h.update(np.ascontiguousarray(hlut).tobytes())
    return h.hexdigest()[:32]


def plan_on_ct(hu: sitk.Image, structures: CaseStructures, settings: PlanSettings, hlut: np.ndarray | None,
               cache: Path | None) -> engine.CTPlan:
    """The plan of ``settings`` on the CT, from ``cache`` (weights only) when a plan with the same key is there."""
    masks = structures.engine_masks()
    path = cache / f"{settings.modality}-{_cache_key(hu, structures, settings, hlut)}.npy" if cache else None
    if path is not None and path.is_file():
        LOG.info("%s plan: reusing cached weights %s", settings.modality, path)
        return engine.make_plan(hu, masks, settings, hlut, weights=np.load(path, allow_pickle=False))
    plan = engine.make_plan(hu, masks, settings, hlut)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".partial.npy")
        np.save(tmp, plan.weights, allow_pickle=False)
        tmp.replace(path)
    return plan


def score(plan_dose: np.ndarray, dose: np.ndarray, structures: CaseStructures, rx: float,
          criteria: GammaCriteria) -> tuple[dict[str, Any], np.ndarray]:
    """Metrics of one recomputed dose against the plan's dose, and its gamma map."""
    ref_t = metrics.dvh_points(plan_dose, structures.target, structures.target_name, rx)
    sct_t = metrics.dvh_points(dose, structures.target, structures.target_name, rx)
    ref_o = {n: metrics.dvh_points(plan_dose, m, n) for n, m in structures.oars.items()}
    sct_o = {n: metrics.dvh_points(dose, m, n) for n, m in structures.oars.items()}
    dvh = metrics.dvh_error(ref_t, sct_t, ref_o, sct_o, rx)
    gamma = gamma_index(plan_dose, dose, structures.spacing_zyx, criteria)
    out = {"dose_mae_percent": metrics.dose_mae_percent(plan_dose, dose, rx), "dvh_error": dvh["dvh_error"],
           "dvh_terms": dvh["terms"], "oars_used": dvh["oars_used"], "gamma_pass_percent": pass_rate(gamma),
           "dvh": {structures.target_name: sct_t.to_dict(), **{n: p.to_dict() for n, p in sct_o.items()}}}
    return out, gamma


def _write_dose(dose: np.ndarray, structures: CaseStructures, ct_image: sitk.Image, path: Path) -> None:
    image = sitk.GetImageFromArray(dose.astype(np.float32))
    image.CopyInformation(structures.reference)
    on_ct = sitk.Resample(image, ct_image, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    sitk.WriteImage(on_ct, str(path), useCompression=True)


def _write_gamma(gamma: np.ndarray, structures: CaseStructures, path: Path) -> None:
    """The gamma map on the working grid: gamma where <= 1 (the search stops there), 2.0 for a failure, -1 below the
    low-dose cut-off."""
    stored = np.where(np.isnan(gamma), -1.0, np.where(np.isinf(gamma), 2.0, gamma)).astype(np.float32)
    image = sitk.GetImageFromArray(stored)
    image.CopyInformation(structures.reference)
    sitk.WriteImage(image, str(path), useCompression=True)


def run_case(case: DoseCase, out: Path, *, overwrite: bool = False, plan_cache: Path | None = None) -> dict[str, Any]:
    """Plan, recompute, score and write one case into ``out`` (staged); returns the dose_metrics.json content."""
    if not case.scts:
        raise DoseInputError(f"{case.case_id}: no sCT given")
    t_case = time.perf_counter()
    ct_array, geometry, ct_image = read_image(case.ct)
    del ct_array
    sct_images = {stem: _read_image_on(p, geometry, f"sCT {stem}")[1] for stem, p in case.scts.items()}
    resolution = case.settings[0].ct_resolution_mm
    structures = load_structures(case, ct_image, geometry, resolution)
    hlut = engine.hlut_table(str(case.hlut)) if case.hlut else None
    masks = structures.engine_masks()
    ct_hu = resample_hu(ct_image, structures.reference)
    sct_hu = {stem: resample_hu(image, structures.reference) for stem, image in sct_images.items()}
    result: dict[str, Any] = _header(case, structures, geometry)
    with staged_folder(out, overwrite=overwrite, what="dose output folder") as tmp:
        (tmp / "doses").mkdir()
        (tmp / "qa").mkdir()
        for settings in case.settings:
            rx = settings.prescription_gy
            plan = plan_on_ct(ct_hu, structures, settings, hlut, plan_cache)
            _write_dose(plan.dose, structures, ct_image, tmp / "doses" / f"{settings.modality}_ct.mha")
            result["plans"][settings.modality] = _plan_entry(plan, structures, rx)
            doses: dict[str, np.ndarray] = {}
            for stem, hu in sct_hu.items():
                dose, seconds = engine.forward_dose(plan, hu, masks, hlut)
                entry, gamma = score(plan.dose, dose, structures, rx, case.gamma)
                entry.update({"plan": settings.to_dict(), "seconds": round(seconds, 2)})
                result["scts"].setdefault(stem, {"file": str(case.scts[stem])})[settings.modality] = entry
                _write_dose(dose, structures, ct_image, tmp / "doses" / f"{settings.modality}_{stem}.mha")
                _write_gamma(gamma, structures, tmp / "doses" / f"{settings.modality}_{stem}_gamma.mha")
                report.save_dose_montage(tmp / "qa" / f"{settings.modality}_{stem}.png", plan.dose, dose, gamma,
                                         structures, rx, title=f"{case.case_id} {settings.modality}: CT vs {stem}")
                doses[stem] = dose
                LOG.info("%s %s %s: dose MAE %.2f %% Rx, DVH error %.4f, gamma %.2f %% (%.1f s)", case.case_id,
                         settings.modality, stem, entry["dose_mae_percent"], entry["dvh_error"],
                         entry["gamma_pass_percent"], seconds)
            report.save_dvh_plot(tmp / "qa" / f"{settings.modality}_dvh.png", plan.dose, doses, structures, rx,
                                 title=f"{case.case_id} {settings.modality}")
        result["seconds"] = round(time.perf_counter() - t_case, 1)
        (tmp / "dose_metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _header(case: DoseCase, structures: CaseStructures, geometry: Geometry) -> dict[str, Any]:
    voxel_cc = float(np.prod(structures.spacing_zyx)) / 1000.0
    return {
        "version": METRICS_VERSION, "case": case.case_id, "ct": str(case.ct), "mask": str(case.mask),
        "working_grid": {"size_xyz": list(structures.reference.GetSize()),
                         "spacing_xyz_mm": [round(s, 4) for s in structures.reference.GetSpacing()],
                         "ct_size_xyz": list(geometry.size)},
        "target": {"name": structures.target_name, "volume_cc": round(voxel_cc * int(structures.target.sum()), 2),
                   **structures.target_info},
        "oars": {n: round(voxel_cc * int(m.sum()), 2) for n, m in structures.oars.items()},
        "gamma": case.gamma.to_dict(), "hlut": str(case.hlut) if case.hlut else "pyRadPlan default",
        "plans": {}, "scts": {},
    }


def _plan_entry(plan: engine.CTPlan, structures: CaseStructures, rx: float) -> dict[str, Any]:
    target = metrics.dvh_points(plan.dose, structures.target, structures.target_name, rx)
    return {"settings": plan.settings.to_dict(), "bixels": int(plan.weights.size),
            "seconds": {k: round(v, 2) for k, v in plan.seconds.items()},
            "dvh": {structures.target_name: target.to_dict(),
                    **{n: metrics.dvh_points(plan.dose, m, n).to_dict() for n, m in structures.oars.items()}}}
