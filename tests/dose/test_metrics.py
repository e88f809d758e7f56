"""Dose metrics from their definitions: D_x, van 't Riet CI, dose MAE over D_ct >= 0.9 Rx, the DVH error."""

from __future__ import annotations

import numpy as np
import pytest

from synthct.dose.metrics import cumulative_dvh, dose_mae_percent, dvh_error, dvh_points, select_oars


def test_dvh_points_of_a_ramp() -> None:
    dose = np.arange(100, dtype=float).reshape(1, 10, 10) / 50.0  # 0 .. 1.98 Gy, uniform
    mask = np.ones_like(dose, dtype=bool)
    p = dvh_points(dose, mask, "all")
    assert p.d98 == pytest.approx(np.percentile(dose, 2))
    assert p.d2 == pytest.approx(np.percentile(dose, 98))
    assert p.mean == pytest.approx(dose.mean())
    assert p.ci is None


def test_conformity_index_van_t_riet() -> None:
    """Target of 8 voxels, 6 covered by >= 95 % Rx; 4 more covered outside: CI = 6^2 / (8 * 10)."""
    dose = np.zeros((1, 4, 5))
    target = np.zeros_like(dose, dtype=bool)
    target[0, :2, :4] = True
    dose[0, :2, :3] = 2.0  # 6 target voxels
    dose[0, 3, :4] = 1.95  # 4 voxels outside the target, >= 1.9 Gy
    p = dvh_points(dose, target, "PTV", rx=2.0)
    assert p.ci == pytest.approx(36 / 80)
    assert p.v95 == pytest.approx(6 / 8)


def test_dose_mae_uses_only_high_dose_voxels() -> None:
    ct = np.array([2.0, 2.0, 1.0, 0.1]).reshape(1, 1, 4)
    sct = np.array([1.9, 2.1, 0.0, 5.0]).reshape(1, 1, 4)
    assert dose_mae_percent(ct, sct, rx=2.0) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="does not cover"):
        dose_mae_percent(ct * 0.1, sct, rx=2.0)


def test_dvh_error_terms_and_zero_dose_oar() -> None:
    """The zero-dose OAR is not eligible (the legacy eps formula would have added 1 for it)."""
    shape = (2, 10, 10)
    z, y, x = np.indices(shape)
    ref = np.where(x < 5, 2.0, 0.5) + 0.0 * z
    sct = ref * 1.02
    target = x < 3
    oars = {"near": (x >= 5) & (x < 7), "far": x >= 7, "zero": np.zeros(shape, bool)}
    oars["zero"][0, 0, 9] = True
    ref_z, sct_z = ref.copy(), sct.copy()
    ref_z[0, 0, 9] = sct_z[0, 0, 9] = 0.0
    r_t, s_t = dvh_points(ref_z, target, "PTV", 2.0), dvh_points(sct_z, target, "PTV", 2.0)
    r_o = {n: dvh_points(ref_z, m, n) for n, m in oars.items()}
    s_o = {n: dvh_points(sct_z, m, n) for n, m in oars.items()}
    out = dvh_error(r_t, s_t, r_o, s_o, rx=2.0)
    assert out["oars_used"] == ["near", "far"]  # "far" holds the zero-dose voxel: lower (D5 + Dmean) / 2
    assert out["terms"]["d98"] == pytest.approx(0.02)
    assert out["terms"]["oar_dmean"] == pytest.approx(0.02)
    assert out["dvh_error"] == pytest.approx(sum(out["terms"].values()))
    assert "zero" not in select_oars(r_o, 2.0)


def test_identical_doses_give_zero_dvh_error() -> None:
    rng = np.random.default_rng(0)
    dose = rng.uniform(0, 2.2, (4, 8, 8))
    target = dose > 1.5
    p = dvh_points(dose, target, "PTV", 2.0)
    o = {"oar": dvh_points(dose, dose < 1.0, "oar")}
    assert dvh_error(p, p, o, o, 2.0)["dvh_error"] == 0.0


def test_cumulative_dvh_is_monotone_from_one_to_zero() -> None:
    dose = np.linspace(0, 2, 101).reshape(1, 1, 101)
    curve = cumulative_dvh(dose, np.ones_like(dose, bool), np.linspace(0, 2.5, 26))
    assert curve[0] == 1.0 and curve[-1] == 0.0 and np.all(np.diff(curve) <= 0)
