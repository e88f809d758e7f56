"""The pyRadPlan adapter: the only module that imports pyRadPlan, lazily, inside its functions.

A plan is made once on the CT: steering information (``generate_stf``), the dose-influence matrix
(``calc_dose_influence``) and fixed-iteration fluence optimisation (``fluence_optimization``). The same plan (steering
+ weights) is then recomputed on each sCT with ``calc_dose_forward``, with a structure set rebuilt on the sCT (a
pyRadPlan ``StructureSet`` is bound to its CT) and a fresh copy of the steering information and weights (pyRadPlan
writes the weights into the steering object). HU → relative electron density (photons) / stopping power (protons):
pyRadPlan's default lookup table (:func:`hlut_table`, matRad's generic one) unless ``hlut`` is given.

Images here are SimpleITK images on the working grid (see :mod:`synthct.dose.structures`), doses (Z, Y, X) float32
arrays in Gy on that grid.
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from synthct.dose.settings import PlanSettings

LOG = logging.getLogger(__name__)

#: How to install the dose extra, quoted by every error about it.
INSTALL_HINT: str = ("the dose evaluation needs pyRadPlan: run `make dose-venv` (or `pip install --no-deps "
                     "pyradplan==0.5.0 pymedphys==0.41.0 && pip install -r requirements-dose.txt`); docs/dose.md")


class DoseDependencyError(RuntimeError):
    """pyRadPlan (or one of its core dependencies) is missing or unusable (a RuntimeError, so every command ends
    with one ERROR line naming the install recipe)."""


#: Whether pyRadPlan's backend preference was set in this process (it starts as "CPU" on the first import).
_STATE: dict[str, bool] = {"configured": False}


def require_pyradplan(gpu: bool | None = None) -> Any:
    """Import and return the ``pyRadPlan`` module, or raise :class:`DoseDependencyError` with the install recipe.

    pyRadPlan prefers a GPU array backend when one is importable (torch is, in synthct's venv); that path has not been
    measured here, so it is off unless ``gpu`` (``synthct dose --pyradplan-gpu``, opt-in and untested)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pyRadPlan
            from pyRadPlan.core._progress import ProgressReporter
    except ImportError as exc:
        raise DoseDependencyError(f"{INSTALL_HINT} ({exc})") from exc
    if gpu is not None or not _STATE["configured"]:
        pyRadPlan.settings.xp.prefer_gpu = bool(gpu)
        _STATE["configured"] = True
    if gpu:
        LOG.warning("pyRadPlan GPU array backends requested: opt-in, not measured or tested by synthct")
    if not LOG.isEnabledFor(logging.DEBUG):
        # pyRadPlan's nested per-ray tqdm bars and its "no engine specified, using the first" warnings are noise
        # here (synthct logs one line per plan and per sCT); --verbose keeps them.
        logging.getLogger("pyRadPlan").setLevel(logging.ERROR)
        ProgressReporter.console_progress = False
    return pyRadPlan


class DoseEngineError(RuntimeError):
    """pyRadPlan failed inside a planning or dose stage (the message names the stage and the settings)."""


@contextmanager
def _stage(name: str, settings: PlanSettings) -> Iterator[None]:
    """Turn an exception raised inside pyRadPlan during stage ``name`` into one :class:`DoseEngineError` line."""
    try:
        yield
    except (ArithmeticError, AttributeError, IndexError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        if isinstance(exc, DoseEngineError):
            raise
        raise DoseEngineError(
            f"pyRadPlan failed in the {settings.modality} {name} ({type(exc).__name__}: {str(exc)[:200]}) with a "
            f"{settings.dose_grid_mm:g} mm dose grid on a >= {settings.ct_resolution_mm:g} mm CT; a finer "
            "--dose-grid / --ct-resolution or more axial slices usually avoid it") from exc


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence pyRadPlan's numpy/Python warnings (divide-by-zero in its ray tracer, GPU fallback) unless debugging."""
    with warnings.catch_warnings():
        if not LOG.isEnabledFor(logging.DEBUG):
            warnings.simplefilter("ignore")
        yield


def hlut_table(path: str | None = None) -> np.ndarray:
    """The HU → relative density (photons) / stopping power (protons) table, (N, 2): pyRadPlan's default, or the
    two-column CSV (HU, value; ``#`` comments) at ``path``. Raises ``ValueError`` for a malformed table."""
    if path is None:
        require_pyradplan()
        from pyRadPlan.ct import default_hlut

        return np.asarray(default_hlut(), dtype=np.float64)
    try:
        table = np.loadtxt(path, delimiter=",", comments="#", ndmin=2, dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the HLUT {path}: {exc}") from exc
    if table.shape[1] != 2 or table.shape[0] < 2:
        raise ValueError(f"HLUT {path} must have 2 columns (HU, value) and >= 2 rows, got shape {table.shape}")
    if not (np.all(np.diff(table[:, 0]) > 0) and np.all(table[:, 1] >= 0)):
        raise ValueError(f"HLUT {path} needs increasing HU and non-negative values")
    return table


@dataclass
class CTPlan:
    """A plan made on the CT: what :func:`forward_dose` needs to recompute it on an sCT.

    Attributes:
        settings: the plan settings.
        stf: pyRadPlan steering information (deep-copied before every use).
        weights: optimised beamlet / spot weights, (n_bixels,).
        dose: the plan's dose on the CT, (Z, Y, X) Gy on the working grid.
        seconds: wall time of each stage.
    """

    settings: PlanSettings
    stf: Any
    weights: np.ndarray
    dose: np.ndarray
    seconds: dict[str, float]


def _objectives(settings: PlanSettings) -> dict[str, list[Any]]:
    from pyRadPlan.optimization.objectives import SquaredDeviation, SquaredOverdosing

    rx = settings.prescription_gy
    return {
        "TARGET": [SquaredDeviation(priority=settings.target_priority, d_ref=rx)],
        "OAR": [SquaredOverdosing(priority=settings.oar_priority, d_max=settings.oar_max_fraction * rx)],
        "EXTERNAL": [SquaredOverdosing(priority=settings.body_priority, d_max=settings.body_max_fraction * rx)],
    }


def build_case(hu: sitk.Image, masks: Mapping[str, tuple[str, sitk.Image]], settings: PlanSettings) -> tuple[Any, Any]:
    """pyRadPlan CT and StructureSet for ``hu`` (float32 HU on the working grid) and ``masks`` (name → (VOI type
    ``TARGET``/``OAR``/``EXTERNAL``, uint8 image on the same grid))."""
    prp = require_pyradplan()
    from pyRadPlan.cst import create_voi

    ct = prp.validate_ct(cube_hu=hu)
    objectives = _objectives(settings)
    vois = [create_voi(name=name, voi_type=kind, mask=mask, ct_image=ct, objectives=objectives[kind])
            for name, (kind, mask) in masks.items()]
    return ct, prp.StructureSet(vois=vois, ct_image=ct)


def _pln(settings: PlanSettings, hlut: np.ndarray | None) -> Any:
    prp = require_pyradplan()
    if settings.modality == "photon":
        pln = prp.PhotonPlan(machine="Generic")
    else:
        pln = prp.IonPlan(radiation_mode="protons", machine="Generic")
    n = len(settings.gantry_angles)
    pln.prop_stf = {"gantry_angles": [float(a) for a in settings.gantry_angles], "couch_angles": [0.0] * n,
                    "bixel_width": float(settings.bixel_width_mm)}
    g = float(settings.dose_grid_mm)
    pln.prop_dose_calc = {"dose_grid": {"resolution": {"x": g, "y": g, "z": g}}}
    if hlut is not None:
        pln.prop_dose_calc["hlut"] = np.asarray(hlut, dtype=np.float64)
    pln.prop_opt = {"solver": "scipy", "max_iter": int(settings.max_iter)}
    pln.num_of_fractions = 1
    pln.prescribed_dose = float(settings.prescription_gy)
    return pln


def _dose_array(result: Mapping[str, Any]) -> np.ndarray:
    return sitk.GetArrayFromImage(result["physical_dose"]).astype(np.float32)


def make_plan(hu: sitk.Image, masks: Mapping[str, tuple[str, sitk.Image]], settings: PlanSettings,
              hlut: np.ndarray | None = None, weights: np.ndarray | None = None) -> CTPlan:
    """Plan ``settings`` on the CT ``hu``; with ``weights`` (a cached plan) skip the influence matrix and optimiser
    and only recompute the dose of those weights."""
    prp = require_pyradplan()
    with _quiet():
        return _make_plan(prp, hu, masks, settings, hlut, weights)


def _make_plan(prp: Any, hu: sitk.Image, masks: Mapping[str, tuple[str, sitk.Image]], settings: PlanSettings,
               hlut: np.ndarray | None, weights: np.ndarray | None) -> CTPlan:
    ct, cst = build_case(hu, masks, settings)
    pln = _pln(settings, hlut)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    with _stage("steering", settings):
        stf = prp.generate_stf(ct, cst, pln)
    seconds["steering"] = time.perf_counter() - t0
    if weights is None:
        t0 = time.perf_counter()
        with _stage("influence matrix", settings):
            dij = prp.calc_dose_influence(ct, cst, stf, pln)
        seconds["influence_matrix"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with _stage("optimisation", settings):
            weights = np.asarray(prp.fluence_optimization(ct, cst, stf, dij, pln), dtype=np.float64)
            dose = _dose_array(dij.compute_result_ct_grid(weights))
        seconds["optimisation"] = time.perf_counter() - t0
        del dij
    else:
        t0 = time.perf_counter()
        with _stage("dose of the cached weights", settings):
            dose = _dose_array(prp.calc_dose_forward(ct, cst, copy.deepcopy(stf), pln, weights=weights.copy()))
        seconds["dose_from_cached_weights"] = time.perf_counter() - t0
    LOG.info("%s plan: %d beams, %d bixels, %s", settings.modality, len(settings.gantry_angles), weights.size,
             ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))
    return CTPlan(settings=settings, stf=stf, weights=weights, dose=dose, seconds=seconds)


def forward_dose(plan: CTPlan, hu: sitk.Image, masks: Mapping[str, tuple[str, sitk.Image]],
                 hlut: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """The dose of ``plan`` (its steering and weights) on the image ``hu``, and the seconds it took."""
    prp = require_pyradplan()
    t0 = time.perf_counter()
    with _quiet(), _stage("dose on the sCT", plan.settings):
        ct, cst = build_case(hu, masks, plan.settings)
        result = prp.calc_dose_forward(ct, cst, copy.deepcopy(plan.stf), _pln(plan.settings, hlut),
                                       weights=plan.weights.copy())
    return _dose_array(result), time.perf_counter() - t0
