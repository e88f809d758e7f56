"""Input and target normalisation (pure numpy, shared by training and inference)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from synthct.contracts.normalization import InputNormalization, TargetNormalization, zscore_in_mask


def test_mr_zscore_uses_body_statistics_only(porcine_dir) -> None:
    mr = sitk.GetArrayFromImage(sitk.ReadImage(str(porcine_dir / "mr.mha")))
    body = sitk.GetArrayFromImage(sitk.ReadImage(str(porcine_dir / "mask.mha"))) > 0
    z = InputNormalization("zscore_mask").apply(mr, body)
    assert z.dtype == np.float32
    assert abs(float(z[body].mean())) < 1e-4 and abs(float(z[body].std()) - 1) < 1e-4
    # outside voxels get the same affine map, not zeros
    inside = mr[body].astype(np.float64)
    np.testing.assert_allclose(z[~body], (mr[~body] - inside.mean()) / inside.std(), rtol=1e-5, atol=1e-5)
    # an empty mask falls back to the whole image
    whole = zscore_in_mask(mr, np.zeros_like(body))
    assert abs(float(whole.mean())) < 1e-4


def test_cbct_clip_zscore() -> None:
    norm = InputNormalization("clip_zscore", clip=(-1024.0, 3071.0), mean=-200.0, std=400.0)
    out = norm.apply(np.array([-3000, -200, 200, 5000], dtype=np.int16))
    np.testing.assert_allclose(out, [(-1024 + 200) / 400, 0, 1, (3071 + 200) / 400], rtol=1e-6)
    with pytest.raises(ValueError, match="needs clip, mean and std"):
        InputNormalization("clip_zscore")
    with pytest.raises(ValueError, match="scheme must be one of"):
        InputNormalization("minmax")


def test_target_round_trip_is_exact_inside_the_clip_range() -> None:
    norm = TargetNormalization(mean=-312.5, std=487.25)
    hu = np.arange(-1024, 3072, dtype=np.float32)
    np.testing.assert_allclose(norm.to_hu(norm.to_z(hu)), hu, rtol=0, atol=1e-3)
    assert norm.to_hu(np.array([-100.0, 100.0], dtype=np.float32)).min() >= -1024
    np.testing.assert_array_equal(norm.to_hu(norm.to_z(np.array([-5000.0, 9000.0]))), [-1024.0, 3071.0])
    with pytest.raises(ValueError, match="std must be positive"):
        TargetNormalization(mean=0.0, std=0.0)


def test_input_skip_init_maps_cbct_hu_to_the_same_ct_hu() -> None:
    from synthct.network.planning import input_skip_init

    norm = InputNormalization("clip_zscore", (-1015.0, 804.0), -138.9, 352.8)
    target = TargetNormalization(mean=-75.1, std=391.0, clip=(-1024.0, 3071.0))
    a, b = input_skip_init({"input_normalization": norm.to_json(), "target_normalization": target.to_json()})
    hu = np.array([-1000.0, -300.0, 0.0, 40.0, 700.0], np.float32)  # inside the clip range
    np.testing.assert_allclose(target.to_hu(a * norm.apply(hu) + b), hu, atol=1e-3)
    with pytest.raises(ValueError, match="'zscore_mask'"):
        input_skip_init({"input_normalization": InputNormalization("zscore_mask").to_json(),
                         "target_normalization": target.to_json()})
