"""CBCT field of view and SynthRAD2025-style body outline (synthct.preprocessing.outline) on a phantom and on the
committed real CBCT of samples/pancreas_cbct."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from testutils import SAMPLES, rng

from synthct.preprocessing.outline import body_outline, cbct_fov, cone_slices, slice_fov


def _phantom_slice(centre: tuple[float, float] = (100.0, 110.0), radius: float = 80.0) -> np.ndarray:
    """A CBCT-like slice: data inside a disc, -1000 outside, and an anterior air gap stored as -1000 inside it."""
    yy, xx = np.mgrid[:256, :256]
    disc = np.hypot(yy - centre[0], xx - centre[1]) <= radius
    image = np.where(disc, 40.0 + 20.0 * rng().standard_normal((256, 256)), -1000.0)
    image[disc & (yy < centre[0] - 0.8 * radius)] = -1000.0  # air above the patient, inside the FOV
    return image


def test_circle_fov_recovers_centre_and_radius_despite_the_air_gap() -> None:
    _, cy, cx, radius = slice_fov(_phantom_slice())
    assert abs(cy - 100.0) < 1.0 and abs(cx - 110.0) < 1.0, (cy, cx)
    assert abs(radius - 80.0) <= 1.0, radius


def test_hull_fov_holds_every_data_voxel_and_stays_in_the_disc() -> None:
    image = _phantom_slice()[None]
    fov = cbct_fov(image)
    assert fov[image != -1000].all()
    yy, xx = np.mgrid[:256, :256]
    disc = np.hypot(yy - 100, xx - 110) <= 80
    assert not fov[0][~disc].any()
    # A cap with no data at all (air stored as background up to the FOV's rim) is outside the hull: there is
    # nothing that says where the FOV ends. Real CBCTs hold ring artefacts in such air, which the hull keeps.
    assert not fov[0][disc & (yy < 100 - 0.8 * 80 - 1)].any()
    with pytest.raises(ValueError, match="'hull' or 'circle'"):
        cbct_fov(image, method="square")


def test_cone_slices_keep_slices_with_at_least_95_percent_of_the_largest_fov() -> None:
    fov = np.zeros((4, 10, 10), bool)
    fov[0, :5] = True  # 50 voxels
    fov[1:, :] = True  # 100 each
    fov[3, 0, :1] = False  # 99 > 95
    assert cone_slices(fov).tolist() == [1, 2, 3]


def test_real_sample_mask_is_the_release_outline_of_its_cbct() -> None:
    """scripts/make_samples.py built samples/pancreas_cbct/mask.mha with body_outline ∩ the hull FOV: recomputing
    both from the committed CBCT gives the committed mask voxel for voxel (the crop keeps every data voxel)."""
    cbct_image = sitk.ReadImage(str(SAMPLES / "pancreas_cbct" / "cbct.mha"))
    cbct = sitk.GetArrayFromImage(cbct_image)
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(SAMPLES / "pancreas_cbct" / "mask.mha"))) > 0
    fov = cbct_fov(cbct)
    outline = body_outline(cbct, tuple(reversed(cbct_image.GetSpacing())), fov=fov)
    np.testing.assert_array_equal(outline, mask)
    assert 0.5 < mask.mean() < fov.mean() <= 1.0
    assert np.all(cbct[~fov] == -1000)


def test_outline_rejects_bad_threshold_and_empty_fov() -> None:
    image = _phantom_slice()[None].repeat(3, axis=0)
    with pytest.raises(ValueError, match="threshold must lie in"):
        body_outline(image, (3.0, 1.0, 1.0), threshold=1.5)
    with pytest.raises(ValueError, match="field of view is empty"):
        body_outline(np.full((2, 8, 8), -1000.0), (3.0, 1.0, 1.0))
