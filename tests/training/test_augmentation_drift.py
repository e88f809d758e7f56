"""The cbct-drift augmentation (issue 22): input only, in HU, parameters inside their stated ranges."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from synthct.contracts.normalization import InputNormalization
from synthct.training.augmentation_drift import (
    MEASURED_NOISE_STD_HU,
    MEASURED_SHADING_CORR_MM,
    MEASURED_SHADING_STD_HU,
    CBCTDriftTransform,
    DriftParams,
    DriftRanges,
    apply_drift,
    draw_drift,
    hu_of,
    smooth_field,
)
from synthct.training.config import TrainConfig
from synthct.training.dataloading import initial_patch_size, training_transforms

NORM = InputNormalization("clip_zscore", (-1024.0, 1152.0), -233.9, 360.5)
SPACING = (3.0, 2.0, 2.0)


def _real_patch(samples_dir) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(CBCT HU, CT HU, mask) of a 16 x 96 x 96 patch of the real pair (training slices 14..)."""
    arrays = [sitk.GetArrayFromImage(sitk.ReadImage(str(samples_dir / "pancreas_cbct" / f"{n}.mha")))
              for n in ("cbct", "ct", "mask")]
    return tuple(a[14:30, 70:166, 70:166] for a in arrays)  # type: ignore[return-value]


def _sample(samples_dir) -> dict[str, torch.Tensor]:
    cbct, ct, mask = _real_patch(samples_dir)
    return {"image": torch.from_numpy(NORM.apply(cbct))[None],
            "regression_target": torch.from_numpy(ct.astype(np.float32))[None],
            "segmentation": torch.from_numpy(mask.astype(np.int16))[None]}


def test_drift_never_changes_target_or_mask(repo_root) -> None:
    samples = repo_root / "samples"
    transforms = training_transforms((16, 96, 96), "cbct-drift", (), NORM, SPACING)
    assert transforms is not None
    np.random.seed(0)
    changed = 0
    for _ in range(12):
        original = _sample(samples)
        out = transforms(**{k: v.clone() for k, v in original.items()})
        assert torch.equal(out["regression_target"], original["regression_target"])
        assert torch.equal(out["segmentation"], original["segmentation"])
        assert out["image"].shape == original["image"].shape and out["image"].dtype == torch.float32
        changed += not torch.equal(out["image"], original["image"])
    assert changed >= 6  # 1 - (2/3)^3 = 70 % of draws change the input


def test_drift_is_applied_in_hu_before_normalisation(repo_root) -> None:
    """An affine-only draw on the normalised patch equals the affine HU map followed by the normalisation."""
    cbct = _real_patch(repo_root / "samples")[0].astype(np.float64)
    t = CBCTDriftTransform(NORM, SPACING, seed=0)
    params = DriftParams(scale=1.1, offset_hu=-60.0)
    image = torch.from_numpy(NORM.apply(cbct))[None]
    out = t._apply_to_image(image, drift=params)[0].numpy()
    expected = NORM.apply(np.clip(1.1 * np.clip(cbct, *NORM.clip) - 60.0, -1024, 3071))
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert torch.equal(t._apply_to_image(image, drift=DriftParams()), image)


def test_parameters_are_drawn_within_the_stated_ranges() -> None:
    ranges = DriftRanges()
    rng = np.random.default_rng(7)
    draws = [draw_drift(rng, ranges) for _ in range(3000)]
    affine = [d for d in draws if (d.scale, d.offset_hu) != (1.0, 0.0)]
    shaded = [d for d in draws if d.shading_std_hu > 0]
    noisy = [d for d in draws if d.noise_factor != 1.0]
    for d in affine:
        assert 0.85 <= d.scale <= 1.15 and -100 <= d.offset_hu <= 100
    for d in shaded:
        assert 0 < d.shading_std_hu <= 1.5 * MEASURED_SHADING_STD_HU
        assert 0.5 * MEASURED_SHADING_CORR_MM <= d.shading_corr_mm <= 1.5 * MEASURED_SHADING_CORR_MM
    for d in noisy:
        assert 0.5 <= d.noise_factor <= 2.0
    for group in (affine, shaded, noisy):  # each transform has probability 1/3
        assert 0.29 < len(group) / len(draws) < 0.38
    # the draws span their ranges, not a corner of them
    assert min(d.offset_hu for d in affine) < -95 and max(d.offset_hu for d in affine) > 95
    assert min(d.noise_factor for d in noisy) < 0.55 and max(d.noise_factor for d in noisy) > 1.95
    narrow = DriftRanges(p_affine=1.0, offset_hu=(10.0, 20.0), scale=(1.0, 1.01), p_shading=0.0, p_noise=0.0)
    for d in (draw_drift(rng, narrow) for _ in range(200)):
        assert 10 <= d.offset_hu <= 20 and 1.0 <= d.scale <= 1.01 and d.shading_std_hu == 0 and d.noise_factor == 1


def test_invalid_ranges_are_refused() -> None:
    with pytest.raises(ValueError, match="p_noise must be in"):
        DriftRanges(p_noise=1.5)
    with pytest.raises(ValueError, match="offset_hu range"):
        DriftRanges(offset_hu=(50.0, -50.0))


def test_shading_field_has_unit_std_and_the_drawn_correlation_length() -> None:
    spacing = (3.0, 2.0, 2.0)
    fields = [smooth_field((40, 200, 200), spacing, 60.0, np.random.default_rng(s)) for s in range(3)]
    assert 0.7 < np.mean([f.std() for f in fields]) < 1.3
    lag = int(round(60.0 / 2.0))  # autocorrelation 0.5 at 60 mm in-plane
    corr = np.mean([np.corrcoef(f[:, :, :-lag].ravel(), f[:, :, lag:].ravel())[0, 1] for f in fields])
    assert 0.35 < corr < 0.65
    longer = smooth_field((40, 200, 200), spacing, 120.0, np.random.default_rng(0))
    assert np.corrcoef(longer[:, :, :-lag].ravel(), longer[:, :, lag:].ravel())[0, 1] > corr


def test_noise_factor_sets_the_noise_std() -> None:
    flat = np.zeros((8, 64, 64), np.float32)
    up = apply_drift(flat, SPACING, DriftParams(noise_factor=2.0, seed=3))
    np.testing.assert_allclose(up.std(), MEASURED_NOISE_STD_HU * np.sqrt(3.0), rtol=1e-3)
    noisy = np.random.default_rng(0).normal(0, 100, (8, 64, 64)).astype(np.float32)
    down = apply_drift(noisy, SPACING, DriftParams(noise_factor=0.5, seed=3))
    assert down.std() < 0.6 * noisy.std()
    # deterministic given the parameters
    np.testing.assert_array_equal(up, apply_drift(flat, SPACING, DriftParams(noise_factor=2.0, seed=3)))


def test_drift_preset_in_config_and_patch_size() -> None:
    assert TrainConfig(augmentation="cbct-drift").augmentation == "cbct-drift"
    with pytest.raises(ValueError, match="mirror_lr needs augmentation 'mild'"):
        TrainConfig(augmentation="cbct-drift", mirror_lr=True)
    assert initial_patch_size((16, 96, 96), "cbct-drift") == [16, 96, 96]
    with pytest.raises(ValueError, match="needs the input normalisation"):
        training_transforms((16, 96, 96), "cbct-drift")


def test_drift_refuses_a_per_case_normalisation() -> None:
    with pytest.raises(ValueError, match="needs the dataset-level clip_zscore"):
        CBCTDriftTransform(InputNormalization("robust_zscore_mask", (-1024.0, 1152.0)), SPACING)
    np.testing.assert_allclose(hu_of(np.array([0.0, 1.0]), NORM), [-233.9, -233.9 + 360.5])


def test_unseeded_transform_draws_from_the_global_generator() -> None:
    """Copies of the transform in augmentation workers (global generators seeded apart) do not repeat each other's
    draws; the trainer's seed (the global generator) repeats them."""
    import pickle

    t = CBCTDriftTransform(NORM, SPACING)
    copies = [pickle.loads(pickle.dumps(t)) for _ in range(2)]
    draws = []
    for seed, copy in zip((1, 2), copies, strict=True):
        np.random.seed(seed)
        draws.append([copy.get_parameters()["drift"] for _ in range(20)])
    assert draws[0] != draws[1]
    np.random.seed(1)
    assert [t.get_parameters()["drift"] for _ in range(20)] == draws[0]
