"""MAE, PSNR and masked MS-SSIM on the committed real volumes: hand-computed values, a brute-force MS-SSIM and
parity numbers from the official SynthRAD2025 evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import fftconvolve

import synthct
from synthct.metrics.image import (
    DATA_RANGE,
    HU_RANGE,
    MS_SSIM_WEIGHTS,
    downsample_mean2,
    image_metrics,
    mae,
    ms_ssim,
    ms_ssim_levels,
    psnr,
)


def test_constants_match_the_official_evaluation():
    assert HU_RANGE == (synthct.HU_MIN, synthct.HU_MAX) == (-1024.0, 3071.0)
    assert DATA_RANGE == 4095.0
    assert MS_SSIM_WEIGHTS == (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


# ---------------------------------------------------------------------------------------------------- MAE and PSNR


def test_mae_psnr_constant_offset_hand_computed(porcine):
    ct, mask = porcine["ct"], porcine["mask"]
    pred = ct + np.int16(10)  # max 2539 HU: nothing reaches the clip range
    assert mae(ct, pred, mask=mask) == 10.0
    assert psnr(ct, pred, mask=mask) == pytest.approx(20 * math.log10(4095 / 10), abs=1e-12)  # MSE = 100


def test_mae_is_not_clipped_but_psnr_is(porcine):
    ct, mask = porcine["ct"], porcine["mask"]
    pred = ct.astype(np.int32) - 100  # air at -1024 HU goes to -1124 HU
    assert mae(ct, pred, mask=mask) == 100.0
    inside = ct[mask > 0].astype(np.float64)
    assert (inside < -924).sum() > 1000  # the sample really has voxels that the clip changes
    # after clipping to >= -1024 the error of a voxel is min(100, HU + 1024)
    mse = np.mean(np.minimum(100.0, inside + 1024.0) ** 2)
    assert psnr(ct, pred, mask=mask) == pytest.approx(10 * math.log10(4095.0**2 / mse), abs=1e-10)


def test_mae_psnr_shifted_real_pair(porcine):
    ct, mask = porcine["ct"], porcine["mask"]
    pred = np.roll(ct, 1, axis=2)
    inside = mask > 0
    diff = ct[inside].astype(np.float64) - pred[inside]
    assert mae(ct, pred, mask=mask) == pytest.approx(np.abs(diff).sum() / inside.sum(), rel=1e-14)
    assert psnr(ct, pred, mask=mask) == pytest.approx(10 * math.log10(4095.0**2 / np.mean(diff**2)), rel=1e-14)


def test_psnr_equals_skimage_on_masked_vectors(porcine):
    skimage_metrics = pytest.importorskip("skimage.metrics")
    ct, mr, mask = porcine["ct"], porcine["mr"], porcine["mask"]
    inside = mask > 0
    g, p = (np.clip(a[inside].astype(np.float64), -1024, 3071) for a in (ct, mr))
    expected = skimage_metrics.peak_signal_noise_ratio(g, p, data_range=4095)
    assert psnr(ct, mr, mask=mask) == pytest.approx(expected, abs=1e-12)


def test_voxels_outside_the_mask_do_not_count(porcine):
    ct, mr, mask = porcine["ct"], porcine["mr"], porcine["mask"]
    garbage = np.where(mask > 0, mr, 3000).astype(np.int16)
    assert image_metrics(ct, garbage, mask=mask) == image_metrics(ct, mr, mask=mask)


def test_identical_real_images(porcine):
    ct, mask = porcine["ct"], porcine["mask"]
    assert mae(ct, ct, mask=mask) == 0.0
    assert psnr(ct, ct, mask=mask) == math.inf
    assert ms_ssim(ct, ct, mask=mask) == pytest.approx(1.0, abs=1e-12)
    assert ms_ssim(ct, ct.astype(np.float32), mask=None) == pytest.approx(1.0, abs=1e-9)


# ---------------------------------------------------------------------------------------------------------- MS-SSIM


def test_ms_ssim_decreases_monotonically_with_noise(porcine):
    ct, mask = porcine["ct"], porcine["mask"]
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(ct.shape)
    values = [ms_ssim(ct, ct + sigma * noise, mask=mask) for sigma in (0, 10, 40, 160, 640)]
    assert values[0] == pytest.approx(1.0, abs=1e-12)
    assert all(a > b for a, b in zip(values, values[1:], strict=False)), values
    assert 0.0 < values[-1] < 0.9


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # Produced once with the official code (SynthRAD2025/evaluation 17cac47, image_metrics.py,
        # ImageMetrics().score_patient on the arrays transposed to (X, Y, Z)), NumPy 2.4.6, SciPy 1.17.1,
        # scikit-image 0.26.0; the code itself is not in this repository.
        ("porcine_mr_vs_ct", (737.8191486728642, 14.33979269294781, 0.4715192366657595)),
        ("porcine_roll_minus30", (54.5922819705565, 30.826942913635445, 0.9709194676195946)),
        ("hn_roll_scaled_f32", (152.49515847232036, 22.441056516768505, 0.9434885063092086)),
    ],
)
def test_parity_with_the_official_evaluation(name, expected, porcine, hn_ct):
    if name == "porcine_mr_vs_ct":
        gt, pred, mask = porcine["ct"], porcine["mr"], porcine["mask"]
    elif name == "porcine_roll_minus30":
        gt, pred, mask = porcine["ct"], (np.roll(porcine["ct"], 2, axis=1) - 30).astype(np.int16), porcine["mask"]
    else:
        gt, mask = hn_ct["ct"], hn_ct["mask"]
        pred = np.roll(gt, (1, -1), axis=(0, 2)).astype(np.float32) * np.float32(0.97) + np.float32(15)
    got = image_metrics(gt, pred, mask=mask)
    assert got["mae"] == pytest.approx(expected[0], rel=1e-12)
    assert got["psnr"] == pytest.approx(expected[1], rel=1e-12)
    # float32 input is processed in float32 at the finest level, as the official code does; rounding differs ~1e-9
    assert got["ms_ssim"] == pytest.approx(expected[2], abs=1e-8 if pred.dtype == np.float32 else 1e-13)


def _brute_downsample(a: np.ndarray) -> np.ndarray:
    """Pairs (x[2m-1], x[2m]) per axis with x[-1] = 0, averaged: fftconvolve('same') with a 2-tap mean, stride 2."""
    for axis in range(a.ndim):
        moved = np.moveaxis(a, axis, 0)
        padded = np.concatenate([np.zeros_like(moved[:1]), moved])
        n = padded.shape[0] // 2 * 2
        a = np.moveaxis((padded[0:n:2] + padded[1:n:2]) / 2.0, 0, axis)
    return a


def _brute_ms_ssim(gt: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> tuple[float, list[float]]:
    """Independent MS-SSIM: explicit 7^3 windows around every scored voxel, two-pass (co)variances."""
    weights = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
    c1, c2 = (0.01 * 4095.0) ** 2, (0.03 * 4095.0) ** 2
    c3 = c2 / 2
    inside = mask > 0
    g = np.where(inside, np.clip(gt.astype(np.float64), -1024, 3071), -1024.0) + 1024.0
    p = np.where(inside, np.clip(pred.astype(np.float64), -1024, 3071), -1024.0) + 1024.0
    widths = [((97 - n) // 2, 97 - n - (97 - n) // 2) if n < 97 else (0, 0) for n in g.shape]
    g, p, m = (np.pad(a, widths, mode="edge") for a in (g, p, inside))
    levels = []
    for w in weights:
        idx = np.argwhere(m)
        idx = idx[np.all((idx >= 3) & (idx < np.array(m.shape) - 3), axis=1)]
        win_g, win_p = sliding_window_view(g, (7, 7, 7)), sliding_window_view(p, (7, 7, 7))
        values = []
        for chunk in np.array_split(idx, max(1, len(idx) // 20000)):
            z, y, x = (chunk - 3).T  # window origin of a voxel 3 voxels in from every border lies inside the image
            xs, ys = win_g[z, y, x].reshape(len(chunk), -1), win_p[z, y, x].reshape(len(chunk), -1)
            mx, my = xs.mean(axis=1), ys.mean(axis=1)
            dx, dy = xs - mx[:, None], ys - my[:, None]
            vx, vy, vxy = (dx * dx).sum(1) / 342, (dy * dy).sum(1) / 342, (dx * dy).sum(1) / 342
            sx, sy = np.sqrt(np.maximum(vx, 0)), np.sqrt(np.maximum(vy, 0))
            lum = np.maximum((2 * mx * my + c1) / (mx**2 + my**2 + c1), 0)
            con = np.maximum((2 * sx * sy + c2) / (vx + vy + c2), 0)
            stru = np.maximum((vxy + c3) / (sx * sy + c3), 0)
            values.append(lum**w * con**w * stru**w)
        levels.append(float(np.concatenate(values).mean()))
        g, p, m = _brute_downsample(g), _brute_downsample(p), m[::2, ::2, ::2]
    return float(np.prod(np.clip(levels, 0, 1))), levels


@pytest.mark.parametrize("touch_border", [False, True])
def test_ms_ssim_equals_brute_force(porcine, touch_border):
    crop = (slice(12, 28), slice(70, 118), slice(50, 98))  # 16 x 48 x 48 voxels of the real porcine CT
    gt = porcine["ct"][crop]
    rng = np.random.default_rng(1)
    pred = (np.roll(gt, 1, axis=1) + rng.normal(0, 60, gt.shape)).astype(np.float64)
    mask = np.zeros(gt.shape, dtype=np.uint8)
    if touch_border:  # a patch on the z = 0 face: edge padding extends the mask into the padded planes
        mask[0:10, 14:34, 14:34] = porcine["mask"][crop][0:10, 14:34, 14:34]
    else:
        mask[2:-2, 2:-2, 2:-2] = porcine["mask"][crop][2:-2, 2:-2, 2:-2]
    assert 0 < mask.mean() < 1
    expected, expected_levels = _brute_ms_ssim(gt, pred, mask)
    got_levels = ms_ssim_levels(gt, pred, mask=mask)
    np.testing.assert_allclose(got_levels, expected_levels, rtol=0, atol=1e-10)
    assert ms_ssim(gt, pred, mask=mask) == pytest.approx(expected, abs=1e-10)
    assert 0.5 < expected < 1.0


def test_downsample_matches_fftconvolve():
    rng = np.random.default_rng(2)
    for shape in [(97, 97, 97), (10, 7, 12), (5, 6, 1)]:
        image = rng.uniform(0, 4095, shape)
        expected = fftconvolve(image, np.ones((2, 2, 2)) / 8, mode="same")[::2, ::2, ::2]
        got = downsample_mean2(image)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


def test_ms_ssim_ignores_axis_order_and_integer_dtype(porcine):
    ct, mr, mask = porcine["ct"], porcine["mr"], porcine["mask"]
    ref = ms_ssim(ct, mr, mask=mask)
    t = (2, 1, 0)
    assert ms_ssim(ct.transpose(t), mr.transpose(t), mask=mask.transpose(t)) == pytest.approx(ref, abs=1e-12)
    assert ms_ssim(ct.astype(np.float64), mr.astype(np.int32), mask=mask.astype(bool)) == pytest.approx(ref, abs=1e-14)
    assert ms_ssim(ct.astype(np.float32), mr.astype(np.float32), mask=mask) == pytest.approx(ref, abs=1e-7)


def test_ms_ssim_pads_small_volumes_and_ignores_masked_out_values(hn_ct):
    ct, mask = hn_ct["ct"][40:60, 30:90, 20:110], hn_ct["mask"][40:60, 30:90, 20:110]  # z < 97: padded
    noisy = ct + np.random.default_rng(3).normal(0, 30, ct.shape)
    value = ms_ssim(ct, noisy, mask=mask)
    assert 0.5 < value < 1.0
    assert ms_ssim(ct, np.where(mask > 0, noisy, 2500.0), mask=mask) == value


# ----------------------------------------------------------------------------------------------------------- errors


def test_errors_quote_the_bad_value(porcine):
    ct, mask = porcine["ct"], porcine["mask"]
    with pytest.raises(ValueError, match=r"same shape, got \(40, 186, 147\) and \(40, 186, 146\)"):
        mae(ct, ct[..., :-1], mask=mask)
    with pytest.raises(ValueError, match="mask must have the image shape"):
        psnr(ct, ct, mask=mask[:-1])
    with pytest.raises(ValueError, match="no voxel > 0"):
        ms_ssim(ct, ct, mask=np.zeros_like(mask))
    with pytest.raises(TypeError, match="integer or float dtype"):
        mae(ct.astype(np.complex64), ct, mask=mask)
    with pytest.raises(TypeError):
        mae(ct, ct, mask)  # type: ignore[misc]  # the mask is keyword-only
