"""Plan settings of ``synthct dose``: deterministic defaults per region and modality, every one a CLI flag.

Pure Python (no pyRadPlan). Angles in degrees (matRad/pyRadPlan convention: gantry about the patient's long axis,
couch 0 = coplanar), lengths in mm, doses in Gy. The defaults follow docs/dose.md: a 7-beam (9 for head and neck)
coplanar photon IMRT plan and a 3-field proton IMPT plan, 2 Gy in one fraction, a 5 mm dose grid on a CT resampled to
3 mm, 100 iterations of pyRadPlan's scipy L-BFGS-B optimiser. The organisers' plans are not public; these are a local,
reproducible estimate (docs/dose.md "How this differs from the organisers'").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from synthct.contracts.synthrad import get_region, region_codes, region_names

#: The two modalities the SynthRAD2025 test phase scores.
MODALITIES: tuple[str, ...] = ("photon", "proton")
#: Region used when a case's region is unknown (a file stem that is no SynthRAD id). The beams per region live in
#: the region table (``synthct.contracts.synthrad.Region.dose_photon_beams`` / ``dose_proton_gantry``).
DEFAULT_REGION: str = "AB"


@dataclass(frozen=True)
class PlanSettings:
    """One plan's settings, as written into ``dose_metrics.json`` (``plan``) and the plan cache key.

    Attributes:
        modality: ``photon`` or ``proton``.
        gantry_angles: beam / field gantry angles, degrees.
        prescription_gy: prescribed dose Rx to the target, Gy (one fraction; metrics are relative to Rx).
        ct_resolution_mm: the CT (and every sCT) is resampled to at least this spacing per axis before planning; the
            metrics are computed on that grid.
        dose_grid_mm: isotropic dose-calculation grid, mm.
        bixel_width_mm: photon bixel / proton spot spacing at the isocentre, mm.
        max_iter: optimiser iterations (fixed, so the plan is deterministic).
        target_priority / oar_priority / body_priority: objective weights.
        oar_max_fraction: OAR squared-overdosing threshold, fraction of Rx.
        body_max_fraction: body squared-overdosing threshold, fraction of Rx.
    """

    modality: str
    gantry_angles: tuple[float, ...]
    prescription_gy: float = 2.0
    ct_resolution_mm: float = 3.0
    dose_grid_mm: float = 5.0
    bixel_width_mm: float = 5.0
    max_iter: int = 100
    target_priority: float = 1000.0
    oar_priority: float = 100.0
    body_priority: float = 10.0
    oar_max_fraction: float = 0.5
    body_max_fraction: float = 1.0
    engine: str = field(default="pyRadPlan 0.5.0 pencil beam, Generic machine, default HLUT")

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"unknown modality {self.modality!r}; expected one of {', '.join(MODALITIES)}")
        if not self.gantry_angles:
            raise ValueError(f"a {self.modality} plan needs at least one beam, got none")
        for name in ("prescription_gy", "ct_resolution_mm", "dose_grid_mm", "bixel_width_mm"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value > 0):
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if not (isinstance(self.max_iter, int) and self.max_iter >= 1):
            raise ValueError(f"max_iter must be an integer >= 1, got {self.max_iter!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (tuples as lists)."""
        out = asdict(self)
        out["gantry_angles"] = list(self.gantry_angles)
        return out


def region_key(region: str) -> str:
    """The region code of a code or a ``region.json`` name (case-insensitive), else :data:`DEFAULT_REGION`."""
    names = {name.lower(): code for name, code in region_names().items()}
    key = names.get(region.strip().lower(), region.strip().upper())
    return key if key in region_codes() else DEFAULT_REGION


def default_settings(modality: str, region: str = DEFAULT_REGION, **overrides: Any) -> PlanSettings:
    """The default plan of ``modality`` for ``region``, with ``overrides`` (None values ignored) applied.

    ``overrides`` may hold ``beams`` (photon: number of equally spaced beams) besides the :class:`PlanSettings`
    fields; unknown keys raise ``TypeError`` naming them.
    """
    row = get_region(region_key(region))
    beams = overrides.pop("beams", None)
    if modality == "photon":
        n = int(beams) if beams is not None else row.dose_photon_beams
        if n < 1:
            raise ValueError(f"--beams must be >= 1, got {n}")
        angles = tuple(round(360.0 * i / n, 4) for i in range(n))
    elif modality == "proton":
        angles = tuple(row.dose_proton_gantry)
    else:
        raise ValueError(f"unknown modality {modality!r}; expected one of {', '.join(MODALITIES)}")
    settings = PlanSettings(modality=modality, gantry_angles=angles)
    known = set(PlanSettings.__dataclass_fields__)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown plan setting(s): {', '.join(unknown)}")
    return replace(settings, **{k: v for k, v in overrides.items() if v is not None})
