"""Gamma index (Low et al. 1998), global normalisation, with sub-voxel search by trilinear interpolation.

Pure numpy + scipy; no pyRadPlan. The reference dose ``ref`` (the plan on the CT) stays on its voxel centres; the
evaluated dose ``ev`` (the same plan on the sCT) is searched at offsets ``o`` on a cubic lattice of step
``dta / interp_fraction`` inside the sphere ``|o| <= max_gamma * dta`` and read by trilinear interpolation, so

    gamma(r) = min_o sqrt( (ev(r + o) - ref(r))^2 / (dose_pct/100 * max(ref))^2 + |o|^2 / dta^2 ).

This is the search pymedphys' ``gamma`` makes (its ``interp_fraction`` defaults to 10); here the offsets are visited in
order of increasing ``|o|`` and a voxel leaves the search as soon as no remaining offset can lower its gamma, which
makes near-identical pairs cheap. Voxels with ``ref < cutoff_pct/100 * max(ref)`` are not evaluated (NaN).
The pass rate is the percentage of evaluated voxels with ``gamma <= 1``. ``tests/dose/test_gamma.py`` pins it to
pymedphys on a real dose pair; ``benchmarks/dose_gamma.py`` measured the two (docs/dose.md "Gamma").
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import map_coordinates

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class GammaCriteria:
    """Gamma settings: dose criterion in % of the reference maximum (global), distance to agreement in mm, the low-dose
    cut-off in % of the reference maximum, the search lattice (``dta / interp_fraction``) and the gamma cap."""

    dose_percent: float = 2.0
    distance_mm: float = 2.0
    cutoff_percent: float = 2.0
    interp_fraction: int = 10
    max_gamma: float = 1.0

    def __post_init__(self) -> None:
        for name in ("dose_percent", "distance_mm", "max_gamma"):
            if not getattr(self, name) > 0:
                raise ValueError(f"gamma {name} must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.cutoff_percent < 100:
            raise ValueError(f"gamma cutoff_percent must be in [0, 100), got {self.cutoff_percent!r}")
        if int(self.interp_fraction) != self.interp_fraction or self.interp_fraction < 1:
            raise ValueError(f"gamma interp_fraction must be an integer >= 1, got {self.interp_fraction!r}")

    def to_dict(self) -> dict[str, float]:
        """The settings as written into dose_metrics.json."""
        return {k: float(v) for k, v in asdict(self).items()}


def _offsets(criteria: GammaCriteria, spacing_zyx: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Search offsets in voxel units (N, 3), sorted by their length in mm, and those lengths (N,)."""
    step = criteria.distance_mm / criteria.interp_fraction
    radius = criteria.max_gamma * criteria.distance_mm
    n = int(np.floor(radius / step + 1e-9))
    axis = np.arange(-n, n + 1) * step
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    length = np.linalg.norm(grid, axis=1)
    keep = length <= radius + 1e-9
    grid, length = grid[keep], length[keep]
    order = np.argsort(length, kind="stable")
    return grid[order] / np.asarray(spacing_zyx, dtype=float), length[order]


def gamma_index(
    ref: np.ndarray,
    ev: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    criteria: GammaCriteria | None = None,
) -> np.ndarray:
    """Gamma of ``ev`` against ``ref``, both (Z, Y, X) doses in Gy on one grid of ``spacing_zyx`` mm.

    Returns a float32 (Z, Y, X) array: gamma where it is ``<= max_gamma``, ``inf`` where no offset within the search
    sphere gives ``<= max_gamma``, NaN below the low-dose cut-off. Raises ``ValueError`` for differing shapes, a
    non-positive reference maximum or non-finite doses.
    """
    criteria = criteria or GammaCriteria()
    ref, ev = np.asarray(ref, dtype=np.float64), np.asarray(ev, dtype=np.float64)
    if ref.shape != ev.shape or ref.ndim != 3:
        raise ValueError(f"gamma needs two 3-D doses of one shape, got {ref.shape} and {ev.shape}")
    if not (np.isfinite(ref).all() and np.isfinite(ev).all()):
        raise ValueError("gamma needs finite doses; got NaN or infinite voxels")
    d_max = float(ref.max())
    if not d_max > 0:
        raise ValueError(f"gamma needs a reference dose with a positive maximum, got {d_max!r} Gy")
    dose_tol = criteria.dose_percent / 100.0 * d_max
    evaluated = ref >= criteria.cutoff_percent / 100.0 * d_max
    points = np.argwhere(evaluated).astype(np.float64)  # (P, 3) voxel indices
    ref_values = ref[evaluated]
    best = np.full(len(points), np.inf)
    active = np.arange(len(points))
    offsets, lengths = _offsets(criteria, spacing_zyx)
    for offset, length in zip(offsets, lengths, strict=True):
        distance_term = (length / criteria.distance_mm) ** 2
        active = active[best[active] > distance_term]  # no later (longer) offset can lower these voxels' gamma
        if active.size == 0:
            break
        coords = (points[active] + offset).T
        values = map_coordinates(ev, coords, order=1, mode="nearest")
        g2 = ((values - ref_values[active]) / dose_tol) ** 2 + distance_term
        best[active] = np.minimum(best[active], g2)
    gamma = np.sqrt(best)
    gamma[gamma > criteria.max_gamma] = np.inf
    out = np.full(ref.shape, np.nan, dtype=np.float32)
    out[evaluated] = gamma
    return out


def pass_rate(gamma: np.ndarray) -> float:
    """Percentage of evaluated voxels (not NaN) with gamma <= 1; raises ``ValueError`` when none is evaluated."""
    evaluated = ~np.isnan(gamma)
    if not evaluated.any():
        raise ValueError("no voxel above the gamma low-dose cut-off")
    return float(100.0 * np.count_nonzero(gamma[evaluated] <= 1.0) / np.count_nonzero(evaluated))


def pymedphys_pass_rate(
    ref: np.ndarray, ev: np.ndarray, spacing_zyx: tuple[float, float, float], criteria: GammaCriteria,
    interp_fraction: int = 10,
) -> float:
    """The same pass rate computed by pymedphys' ``gamma`` (for the comparison benchmark and the test that pins ours).

    pymedphys (Apache-2.0) and numba are imported here only; ``ImportError`` names the dose install recipe.
    """
    try:
        import pymedphys
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("pymedphys is not installed: run `make dose-venv` (docs/dose.md)") from exc
    axes = tuple(np.arange(n, dtype=float) * s for n, s in zip(ref.shape, spacing_zyx, strict=True))
    # pymedphys logs INFO lines on the root logger whose %-formatting of numpy arrays fails under numpy 2.4
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        gamma = pymedphys.gamma(
            axes, np.asarray(ref, dtype=float), axes, np.asarray(ev, dtype=float),
            dose_percent_threshold=criteria.dose_percent, distance_mm_threshold=criteria.distance_mm,
            lower_percent_dose_cutoff=criteria.cutoff_percent, interp_fraction=interp_fraction,
            max_gamma=1.1, global_normalisation=float(np.max(ref)),
        )
    finally:
        logging.disable(previous)
    valid = ~np.isnan(gamma)
    return float(100.0 * np.count_nonzero(gamma[valid] <= 1.0) / np.count_nonzero(valid))
