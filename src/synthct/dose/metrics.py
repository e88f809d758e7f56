"""Dose metrics as the SynthRAD2025 test phase defines them, implemented from the definitions (docs/dose.md §1).

Pure numpy. Doses are (Z, Y, X) arrays in Gy on one grid, ``rx`` the prescription in Gy, masks boolean arrays of the
same shape.

- **dose MAE** = mean |D_ct − D_sct| / Rx over the voxels with D_ct >= 0.9 Rx (reported in % of Rx).
- **DVH error** = |ΔD98| / D98 of the target + |ΔCI| / CI of the target (van 't Riet conformity at 95 % of Rx, which
  matRad reports as the target's "CI") + the mean over the OARs of |ΔD2| / D2 + the mean over the OARs of
  |ΔDmean| / Dmean, the OARs being the (up to) 3 with the highest (D5 + Dmean) / 2 in the CT plan. The D_x are of
  the CT plan (reference) and of the same plan on the sCT.
- **Zero-dose OARs** (our choice; the legacy formula adds an eps to numerator and denominator alike, so an OAR with
  no dose contributes 1 whatever the sCT does): an OAR is eligible only when its (D5 + Dmean) / 2 in the CT plan is
  at least :data:`OAR_MIN_DOSE_FRACTION` of Rx, and every relative term divides by max(reference, that floor). With
  no eligible OAR the OAR terms are 0 and ``oars_used`` is empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

#: Voxels with D_ct >= this fraction of Rx enter the dose MAE.
MAE_THRESHOLD: float = 0.9
#: Reference dose of the conformity index, fraction of Rx (van 't Riet at 95 %).
CI_DOSE_FRACTION: float = 0.95
#: Number of OARs in the DVH error.
N_OARS: int = 3
#: An OAR enters the DVH error only if its CT-plan (D5 + Dmean) / 2 reaches this fraction of Rx; it also floors the
#: denominators of the relative terms.
OAR_MIN_DOSE_FRACTION: float = 0.01


@dataclass(frozen=True)
class DVHPoints:
    """DVH parameters of one structure in Gy (``ci`` and ``v95`` are fractions; set for the target only)."""

    d98: float
    d95: float
    d50: float
    d5: float
    d2: float
    mean: float
    ci: float | None = None
    v95: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


def _check(dose: np.ndarray, mask: np.ndarray, name: str) -> np.ndarray:
    if mask.shape != dose.shape:
        raise ValueError(f"structure {name!r} has shape {mask.shape}, the dose {dose.shape}")
    values = dose[mask]
    if values.size == 0:
        raise ValueError(f"structure {name!r} has no voxel on the dose grid")
    return values


def dvh_points(dose: np.ndarray, mask: np.ndarray, name: str, rx: float | None = None) -> DVHPoints:
    """D98/D95/D50/D5/D2 (dose received by at least that % of the volume) and the mean of ``dose`` in ``mask``; with
    ``rx`` (a target) also the van 't Riet conformity index and V95 (fraction of the target >= 0.95 Rx)."""
    values = _check(dose, mask, name).astype(np.float64)
    d98, d95, d50, d5, d2 = (float(v) for v in np.percentile(values, [2, 5, 50, 95, 98]))
    ci = v95 = None
    if rx is not None:
        covered = dose >= CI_DOSE_FRACTION * rx
        target_covered = int(np.count_nonzero(covered & mask))
        v95 = target_covered / values.size
        total_covered = int(np.count_nonzero(covered))
        ci = target_covered**2 / (values.size * total_covered) if total_covered else 0.0
    return DVHPoints(d98, d95, d50, d5, d2, float(values.mean()), ci, v95)


def dose_mae_percent(d_ct: np.ndarray, d_sct: np.ndarray, rx: float) -> float:
    """Mean |D_ct − D_sct| / Rx in %, over the voxels with D_ct >= 0.9 Rx; ``ValueError`` if there are none."""
    if d_ct.shape != d_sct.shape:
        raise ValueError(f"dose grids differ: {d_ct.shape} vs {d_sct.shape}")
    high = d_ct >= MAE_THRESHOLD * rx
    if not high.any():
        raise ValueError(f"no voxel of the CT plan reaches {MAE_THRESHOLD:.0%} of Rx = {rx} Gy (max "
                         f"{float(d_ct.max()):.3g} Gy): the plan does not cover its target")
    return float(100.0 * np.mean(np.abs(d_ct[high] - d_sct[high])) / rx)


def _rel(ref: float, other: float, floor: float) -> float:
    return abs(ref - other) / max(abs(ref), floor)


def select_oars(ref_points: Mapping[str, DVHPoints], rx: float) -> list[str]:
    """The (up to) :data:`N_OARS` OARs with the highest (D5 + Dmean) / 2 in the CT plan, among the eligible ones."""
    score = {name: (p.d5 + p.mean) / 2 for name, p in ref_points.items()}
    eligible = [n for n in score if score[n] >= OAR_MIN_DOSE_FRACTION * rx]
    return sorted(eligible, key=lambda n: (-score[n], n))[:N_OARS]


def dvh_error(
    ref_target: DVHPoints, sct_target: DVHPoints, ref_oars: Mapping[str, DVHPoints],
    sct_oars: Mapping[str, DVHPoints], rx: float,
) -> dict[str, object]:
    """The DVH error and its terms (``d98``, ``ci``, ``oar_d2``, ``oar_dmean``), plus ``oars_used``."""
    floor = OAR_MIN_DOSE_FRACTION * rx
    assert ref_target.ci is not None and sct_target.ci is not None, "target points need rx"
    d98 = _rel(ref_target.d98, sct_target.d98, floor)
    ci = _rel(ref_target.ci, sct_target.ci, 1e-6)
    used = select_oars(ref_oars, rx)
    d2 = float(np.mean([_rel(ref_oars[n].d2, sct_oars[n].d2, floor) for n in used])) if used else 0.0
    dmean = float(np.mean([_rel(ref_oars[n].mean, sct_oars[n].mean, floor) for n in used])) if used else 0.0
    return {"dvh_error": d98 + ci + d2 + dmean, "terms": {"d98": d98, "ci": ci, "oar_d2": d2, "oar_dmean": dmean},
            "oars_used": used}


def cumulative_dvh(dose: np.ndarray, mask: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Fraction of ``mask``'s volume receiving at least each dose in ``edges`` (Gy), shape ``edges.shape``."""
    values = np.sort(dose[mask].astype(np.float64))
    if values.size == 0:
        return np.zeros_like(edges, dtype=np.float64)
    return 1.0 - np.searchsorted(values, edges, side="left") / values.size
