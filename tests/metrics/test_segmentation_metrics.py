"""Dice / HD95 on the real TotalSegmentator label map: region class lists, shifted copies with hand-checked values,
the missing-class policy and parity with MONAI's DiceMetric / HausdorffDistanceMetric."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from synthct.metrics.segmentation import (
    REGION_CLASSES,
    bone_dice,
    dice,
    hd95,
    image_diagonal_mm,
    region_classes,
    segmentation_metrics,
)

# ----------------------------------------------------------------------------------------------- region class lists


def test_region_class_lists_are_pinned():
    vertebrae = list(range(26, 51))
    ribs = list(range(92, 116))
    torso = [2, 3, 5, 6, 10, 11, 12, 13, 14, *vertebrae, 51, 79, *ribs, 116]
    assert list(REGION_CLASSES["AB"]) == torso
    assert list(REGION_CLASSES["TH"]) == torso
    assert list(REGION_CLASSES["HN"]) == [15, 16, 17, *vertebrae, 79, 90, 91]
    assert (len(REGION_CLASSES["AB"]), len(REGION_CLASSES["TH"]), len(REGION_CLASSES["HN"])) == (61, 61, 31)
    assert set(REGION_CLASSES) == {"AB", "TH", "HN"}
    assert region_classes("hn") == REGION_CLASSES["HN"]
    with pytest.raises(ValueError, match=r"region must be one of \['AB', 'HN', 'TH'\], got 'Head and Neck'"):
        region_classes("Head and Neck")


def test_region_class_names_from_the_totalsegmentator_class_map(samples_dir):
    names = json.loads((samples_dir / "totalsegmentator" / "totalsegmentator_class_map.json").read_text())["total"]
    hn = {names[str(c)] for c in REGION_CLASSES["HN"]}
    assert {"esophagus", "trachea", "thyroid_gland", "spinal_cord", "brain", "skull"} <= hn
    assert {n for n in hn if n.startswith("vertebrae_")} == {f"vertebrae_{v}" for v in _vertebra_names()}
    torso = {names[str(c)] for c in REGION_CLASSES["AB"]}
    assert {"kidney_right", "kidney_left", "liver", "stomach", "heart", "spinal_cord", "sternum"} <= torso
    assert {n for n in torso if n.startswith("lung_")} == {
        "lung_upper_lobe_left",
        "lung_lower_lobe_left",
        "lung_upper_lobe_right",
        "lung_middle_lobe_right",
        "lung_lower_lobe_right",
    }
    assert {n for n in torso if n.startswith("rib_")} == {
        f"rib_{s}_{i}" for s in ("left", "right") for i in range(1, 13)
    }
    assert "sacrum" not in hn | torso and "costal_cartilages" not in torso


def _vertebra_names() -> list[str]:
    return ["S1", *(f"L{i}" for i in range(5, 0, -1)), *(f"T{i}" for i in range(12, 0, -1))] + [
        f"C{i}" for i in range(7, 0, -1)
    ]


# ------------------------------------------------------------------------------------------ shifted real label maps


def _shift(labels: np.ndarray, offset: tuple[int, int, int]) -> np.ndarray:
    """Translate by a non-negative voxel offset, zero fill."""
    out = np.zeros_like(labels)
    dst = tuple(slice(o, None) for o in offset)
    src = tuple(slice(0, n - o) for n, o in zip(labels.shape, offset, strict=True))
    out[dst] = labels[src]
    return out


def test_one_voxel_shift_hand_checked(ts_labels):
    labels, spacing = ts_labels
    assert spacing == (3.0, 3.0, 3.0)
    pred = _shift(labels, (0, 0, 1))
    scores = segmentation_metrics(labels, pred, classes=REGION_CLASSES["AB"], spacing_mm=spacing)
    present = [c for c in REGION_CLASSES["AB"] if (labels == c).any()]
    assert [s.label for s in scores.per_class] == present
    assert len(present) == 25
    for s in scores.per_class:
        a = labels == s.label
        assert not a[:, :, -1].any()  # nothing leaves the image: the copy is a pure translation by 3 mm
        overlap = np.count_nonzero(a[:, :, 1:] & a[:, :, :-1])
        assert s.dice == pytest.approx(overlap / a.sum(), abs=1e-15)  # |B| = |A|
        # every surface voxel moves by exactly 3 mm and no other voxel is nearer than one 3 mm step, so each
        # directed distance is 0 or 3 mm; more than 5 % of them are 3 mm, hence HD95 = 3 mm
        assert s.hd95_mm == 3.0
        assert not s.missing
    liver = next(s for s in scores.per_class if s.label == 5)
    assert liver.dice == 2 * 36829 / (2 * 38634)  # liver: 38634 voxels, 36829 keep their place
    middle_lobe = next(s for s in scores.per_class if s.label == 13)  # a single voxel: no overlap, 3 mm apart
    assert (middle_lobe.dice, middle_lobe.hd95_mm) == (0.0, 3.0)
    assert scores.hd95_mm == 3.0
    assert scores.dice == pytest.approx(0.6316982163356788, abs=1e-15)


def test_anisotropic_spacing_and_diagonal_shift(ts_labels):
    labels, _ = ts_labels
    spacing = (2.5, 1.5, 3.0)  # (z, y, x): distances must use the spacing of each array axis
    pred = _shift(labels, (1, 2, 0))
    scores = segmentation_metrics(labels, pred, classes=REGION_CLASSES["AB"], spacing_mm=spacing,
                                  missing_hd95="diagonal")
    step = math.hypot(2.5, 2 * 1.5)  # 3.905 mm
    translated = 0
    for s in scores.per_class:
        a = labels == s.label
        if not (a[-1].any() or a[:, -2:].any()):  # nothing leaves the image: a pure translation
            assert s.hd95_mm == pytest.approx(step, abs=1e-12)
            translated += 1
    assert translated >= 5
    # the single voxel of label 13 lies in the last z plane: it leaves the image and is missing from the copy
    (lobe,) = [s for s in scores.per_class if s.missing]
    assert lobe.label == 13 and lobe.hd95_mm == pytest.approx(image_diagonal_mm(labels.shape, spacing))


def test_identical_label_maps(ts_labels):
    labels, spacing = ts_labels
    scores = segmentation_metrics(labels, labels, classes=REGION_CLASSES["TH"], spacing_mm=spacing)
    assert (scores.dice, scores.hd95_mm, len(scores.per_class)) == (1.0, 0.0, 25)


def test_class_missing_from_the_prediction(ts_labels):
    labels, spacing = ts_labels
    pred = labels.copy()
    pred[pred == 5] = 0  # the sCT segmentation lost the liver
    diagonal = math.sqrt((30 * 3.0) ** 2 + (101 * 3.0) ** 2 + (122 * 3.0) ** 2)
    assert image_diagonal_mm(labels.shape, spacing) == pytest.approx(diagonal)

    scores = segmentation_metrics(labels, pred, classes=REGION_CLASSES["AB"], spacing_mm=spacing,
                                  missing_hd95="diagonal")
    liver = next(s for s in scores.per_class if s.label == 5)
    assert (liver.dice, liver.missing) == (0.0, True)
    assert liver.hd95_mm == pytest.approx(diagonal)
    assert scores.dice == pytest.approx(24 / 25)
    assert scores.hd95_mm == pytest.approx(diagonal / 25)

    excluded = segmentation_metrics(labels, pred, classes=REGION_CLASSES["AB"], spacing_mm=spacing)  # the default
    assert math.isnan(next(s for s in excluded.per_class if s.label == 5).hd95_mm)
    assert (excluded.dice, excluded.hd95_mm) == (pytest.approx(24 / 25), 0.0)  # the other 24 classes are exact


def test_no_listed_class_in_the_ground_truth(ts_labels):
    labels, spacing = ts_labels
    spleen_only = np.where(labels == 1, 1, 0).astype(np.uint8)  # spleen (1) is in no region list
    scores = segmentation_metrics(spleen_only, labels, classes=REGION_CLASSES["HN"], spacing_mm=spacing)
    assert (scores.dice, scores.hd95_mm, scores.per_class) == (0.0, 0.0, ())


def test_float_label_maps_and_errors(ts_labels):
    labels, spacing = ts_labels
    pred = _shift(labels, (0, 1, 0))
    ref = segmentation_metrics(labels, pred, classes=REGION_CLASSES["AB"], spacing_mm=spacing)
    as_float = segmentation_metrics(
        labels.astype(np.float64), pred.astype(np.float32), classes=REGION_CLASSES["AB"], spacing_mm=spacing
    )
    assert as_float == ref
    with pytest.raises(ValueError, match="integer labels"):
        segmentation_metrics(labels + 0.5, pred, classes=[5], spacing_mm=spacing)
    with pytest.raises(ValueError, match=r"spacing_mm must hold 3 positive values .* got \(3.0, 3.0\)"):
        segmentation_metrics(labels, pred, classes=[5], spacing_mm=(3.0, 3.0))
    with pytest.raises(ValueError, match="same shape"):
        segmentation_metrics(labels, pred[:-1], classes=[5], spacing_mm=spacing)
    with pytest.raises(ValueError, match="missing_hd95 must be 'exclude' or 'diagonal', got 'inf'"):
        segmentation_metrics(labels, pred, classes=[5], spacing_mm=spacing, missing_hd95="inf")  # type: ignore[arg-type]


def test_binary_dice_and_hd95(ts_labels):
    labels, spacing = ts_labels
    liver = labels == 5
    moved = _shift(liver.astype(np.uint8), (0, 0, 2))
    assert dice(liver, moved) == pytest.approx(np.count_nonzero(liver[:, :, 2:] & liver[:, :, :-2]) / liver.sum())
    assert hd95(liver, moved, spacing_mm=spacing) == 6.0
    assert hd95(liver, np.zeros_like(liver), spacing_mm=spacing) == pytest.approx(
        image_diagonal_mm(liver.shape, spacing)
    )
    assert hd95(np.zeros_like(liver), np.zeros_like(liver), spacing_mm=spacing) == 0.0
    assert math.isnan(dice(np.zeros(3), np.zeros(3)))


# ------------------------------------------------------------------------------------------------- parity with MONAI


def test_parity_with_monai(ts_labels):
    monai_metrics = pytest.importorskip("monai.metrics")
    torch = pytest.importorskip("torch")
    from scipy.ndimage import binary_erosion

    labels, _ = ts_labels
    spacing = (2.5, 1.5, 3.0)
    pred = _shift(labels, (1, 2, 0))
    rng = np.random.default_rng(0)
    surface = (pred > 0) & ~binary_erosion(pred > 0)
    pred[surface & (rng.random(pred.shape) < 0.3)] = 0  # ragged outlines
    pred[binary_erosion(pred == 30, iterations=1)] = 0  # a hollow vertebra
    pred[(pred == 0) & _shift((labels == 6).astype(np.uint8), (0, 0, 3)).astype(bool)] = 6  # stomach grows
    pred[pred == 2] = 0  # the right kidney is lost
    classes = REGION_CLASSES["AB"]

    dice_metric = monai_metrics.DiceMetric(include_background=True, reduction="mean", get_not_nans=False)
    hd_metric = monai_metrics.HausdorffDistanceMetric(
        include_background=True, reduction="mean", percentile=95, get_not_nans=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns about the empty prediction of class 2
        for c in classes:  # the official per-class loop (segmentation_metrics.py)
            if not (labels == c).any():
                continue
            # Speed only: MONAI gets the bounding box of both masks grown by 2 voxels (clamped to the image). Its
            # own first step crops to the foreground with a 1-voxel margin, so the values are those of the full map.
            box = tuple(
                slice(max(int(i.min()) - 2, 0), int(i.max()) + 3) for i in np.nonzero((labels == c) | (pred == c))
            )
            gt_c = torch.from_numpy(labels[box] == c)[None, None]
            pred_c = torch.from_numpy(pred[box] == c)[None, None]
            dice_metric(pred_c, gt_c)
            hd_metric(pred_c, gt_c, spacing=spacing)
        monai_dice = dice_metric.get_buffer().flatten().numpy().astype(np.float64)
        monai_hd = hd_metric.get_buffer().flatten().numpy().astype(np.float64)
        monai_patient = (dice_metric.aggregate().item(), hd_metric.aggregate().item())

    ours = segmentation_metrics(labels, pred, classes=classes, spacing_mm=spacing, missing_hd95="exclude")
    assert len(ours.per_class) == len(monai_dice) == 25
    np.testing.assert_allclose([s.dice for s in ours.per_class], monai_dice, rtol=0, atol=1e-6)
    # MONAI 1.6.1 gives nan for the class missing from the prediction; elsewhere float32 rounding only
    np.testing.assert_allclose([s.hd95_mm for s in ours.per_class], monai_hd, rtol=0, atol=1e-4, equal_nan=True)
    assert np.isnan(monai_hd[[s.label for s in ours.per_class].index(2)])
    assert len({round(h, 3) for h in monai_hd if not np.isnan(h)}) > 3  # varied distances, not only the shift
    assert ours.dice == pytest.approx(monai_patient[0], abs=1e-6)
    assert ours.hd95_mm == pytest.approx(monai_patient[1], abs=1e-4)


# ------------------------------------------------------------------------------------------------------- bone Dice


def test_bone_dice(porcine):
    ct, mask = porcine["ct"], porcine["mask"]
    assert bone_dice(ct, ct, mask=mask) == 1.0
    moved = np.roll(ct, 1, axis=2)
    a, b = (ct > 250) & (mask > 0), (moved > 250) & (mask > 0)
    assert bone_dice(ct, moved, mask=mask) == pytest.approx(2 * (a & b).sum() / (a.sum() + b.sum()))
    assert 0.3 < bone_dice(ct, moved, mask=mask) < 1.0
    soft = np.full_like(ct, 40)
    assert bone_dice(soft, soft, mask=mask) == 1.0  # no bone in either: perfect agreement
    assert bone_dice(ct, soft, mask=None) == 0.0
