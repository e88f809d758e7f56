"""Evaluate a folder of synthetic CTs the way the SynthRAD2025 leaderboard does, and write JSON, CSV and a QA report.

Per case: ``mae``, ``psnr`` and ``ms_ssim`` (:mod:`synthct.metrics.image`) inside the body mask and, when
TotalSegmentator's fast ``total`` model is available, ``DICE`` and ``HD95`` between the TotalSegmentator label maps of
the sCT and the CT over the region's classes (:mod:`synthct.metrics.segmentation`); otherwise ``bone_dice``
(HU > 250), which needs no weights. Aggregates per metric, over all cases and per region: mean, std, min, max, 25th /
50th / 75th percentiles and count, with the official key names (SynthRAD2025/evaluation 17cac47, ``evaluate.py``).

Outputs in ``out_dir``: ``metrics.json``, ``metrics_per_case.csv``, ``metrics_aggregates.csv``,
``segmentation_per_class.csv`` (TotalSegmentator only), ``segmentations/`` (label maps), and with the report
``index.html``, ``qa/<case>.png`` and ``qa/mae_by_region.png``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import SimpleITK as sitk

from synthct.io.totalseg import TotalSegmentator, find_totalsegmentator
from synthct.metrics import report
from synthct.metrics.cases import CaseFiles, pair_cases_skipping
from synthct.metrics.image import image_metrics
from synthct.metrics.segmentation import (
    BONE_THRESHOLD_HU,
    MISSING_POLICY_TEXT,
    REGION_CLASSES,
    ClassScore,
    MissingPolicy,
    bone_dice,
    region_classes,
    segmentation_metrics,
)

LOG = logging.getLogger(__name__)

SegmentationMode = Literal["auto", "totalsegmentator", "bone"]
#: Statistic names of the aggregates, as in the official ``metrics.json``.
STAT_KEYS: tuple[str, ...] = ("mean", "std", "min", "max", "25pc", "50pc", "75pc", "count")


def all_region_classes() -> tuple[int, ...]:
    """Scored classes for a case whose region is unknown: every class of any region."""
    return tuple(sorted({c for cs in REGION_CLASSES.values() for c in cs}))


@dataclass(frozen=True)
class EvaluationConfig:
    """Settings of :func:`evaluate_folder`.

    Attributes:
        pred_dir: synthetic CTs (``.mha``, ``.nii.gz`` or ``.nii``) named by case id (:mod:`synthct.metrics.cases`).
        gt_dir: ground-truth CTs on the same grids; defines the cases.
        out_dir: output folder (created).
        masks_dir: body masks; without them every voxel is scored.
        inputs_dir: MR / CBCT inputs, shown in the QA montage.
        gt_seg_dir: precomputed TotalSegmentator label maps of the CTs (as the official ``segmentation/`` folder);
            without them the CTs are segmented too.
        segmentation: ``"auto"`` (TotalSegmentator when available, else bone Dice), ``"totalsegmentator"`` (required)
            or ``"bone"``.
        totalseg_weights: TotalSegmentator nnU-Net results folder (default ``~/.totalsegmentator/nnunet/results``).
        totalseg_executable: the TotalSegmentator command.
        missing_hd95: HD95 of a class missing from the sCT segmentation (see :func:`segmentation_metrics`):
            ``"exclude"`` (default, the official policy) or ``"diagonal"`` (opt-in); named in metrics.json.
        report: write the PNG montages, box plot and ``index.html``.
        progress: show a tqdm progress bar over the cases.
        skip_missing: score only the cases that have a prediction; the others are listed as skipped in
            metrics.json (``skipped_cases``) and the report.
        extra_columns: case id → further per-case values (e.g. the dose metrics of ``synthct evaluate --dose``),
            added to the rows, aggregates, CSVs and the report like the image metrics.
        extra_notes: sentences added to the notes (metrics.json and the report).
    """

    pred_dir: Path
    gt_dir: Path
    out_dir: Path
    masks_dir: Path | None = None
    inputs_dir: Path | None = None
    gt_seg_dir: Path | None = None
    segmentation: SegmentationMode = "auto"
    totalseg_weights: Path | None = None
    totalseg_executable: str = "TotalSegmentator"
    missing_hd95: MissingPolicy = "exclude"
    report: bool = True
    progress: bool = True
    skip_missing: bool = False
    extra_columns: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    extra_notes: tuple[str, ...] = ()


@dataclass
class EvaluationResult:
    """Per-case rows, aggregates (metric → statistic → value), per-region aggregates and the files written."""

    results: list[dict[str, Any]]
    aggregates: dict[str, dict[str, float]]
    aggregates_by_region: dict[str, dict[str, dict[str, float]]]
    segmentation_method: str
    notes: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def aggregate(values: Sequence[float]) -> dict[str, float]:
    """Mean, std (population), min, max, 25/50/75th percentiles (linear) and count, as the official evaluation."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {key: (0 if key == "count" else float("nan")) for key in STAT_KEYS}
    p25, p50, p75 = np.percentile(arr, [25, 50, 75])
    return {
        "mean": float(np.mean(arr)),
        "std": float(np.std(arr)),
        "min": float(np.min(arr)),
        "max": float(np.max(arr)),
        "25pc": float(p25),
        "50pc": float(p50),
        "75pc": float(p75),
        "count": int(arr.size),
    }


def aggregate_rows(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """:func:`aggregate` of every numeric column of the per-case rows (``case_id`` and ``region`` excluded)."""
    keys = [k for k in (rows[0] if rows else {}) if k not in ("case_id", "region")]
    return {k: aggregate([float(r[k]) for r in rows]) for k in keys}


def _read(path: Path) -> tuple[sitk.Image, np.ndarray]:
    image = sitk.ReadImage(str(path))
    return image, sitk.GetArrayFromImage(image)


def _check_grid(
    ref_path: Path, ref: sitk.Image, ref_arr: np.ndarray, path: Path, other: sitk.Image, arr: np.ndarray
) -> None:
    """Shapes must match (ValueError); other geometry differences only warn: the GT geometry is imposed, as on GC."""
    if arr.shape != ref_arr.shape:
        raise ValueError(f"{path} has shape {arr.shape} (z, y, x) but the ground truth {ref_path} has {ref_arr.shape}")
    if not np.allclose(ref.GetSpacing(), other.GetSpacing(), atol=1e-3) or not np.allclose(
        ref.GetOrigin(), other.GetOrigin(), atol=1e-2
    ):
        LOG.warning("%s: spacing/origin differ from %s; using the ground-truth geometry", path.name, ref_path.name)


def _header_size(path: Path) -> tuple[int, ...]:
    """(x, y, z) size from the file header only; ValueError naming the file when it cannot be read."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        lines = str(exc).strip().splitlines()
        raise ValueError(f"{path}: unreadable image ({lines[-1] if lines else 'SimpleITK error'})") from None
    return tuple(reader.GetSize())


def validate_pairs(cases: Sequence[CaseFiles]) -> None:
    """Check every case's files (readable headers, the ground truth's size) before any is scored.

    Raises:
        ValueError: listing every bad file (not only the first).
    """
    problems: list[str] = []
    for case in cases:
        try:
            size = _header_size(case.gt)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        for kind, path in (("prediction", case.pred), ("mask", case.mask), ("input", case.input),
                           ("segmentation", case.gt_seg)):
            if path is None:
                continue
            try:
                other = _header_size(path)
            except ValueError as exc:
                problems.append(str(exc))
                continue
            if other != size:
                problems.append(f"{case.case_id}: {kind} {path} has size {other} (x, y, z) but the ground truth "
                                f"{case.gt} has {size}")
    if problems:
        raise ValueError(f"{len(problems)} bad file(s), nothing written:\n  " + "\n  ".join(problems))


class _Segmenter:
    """Chooses and runs the geometric metric of a case (TotalSegmentator Dice/HD95, or bone Dice)."""

    def __init__(self, config: EvaluationConfig) -> None:
        self.config = config
        self.runner: TotalSegmentator | None = None
        self.note = ""
        if config.segmentation == "bone":
            self.note = f"Geometric metric: bone Dice (HU > {BONE_THRESHOLD_HU:g}), as requested."
            return
        self.runner, reason = find_totalsegmentator(config.totalseg_weights, config.totalseg_executable)
        if self.runner is None:
            if config.segmentation == "totalsegmentator":
                raise FileNotFoundError(f"TotalSegmentator requested but {reason}")
            self.note = (
                f"TotalSegmentator unavailable ({reason}): reporting bone Dice (HU > {BONE_THRESHOLD_HU:g}) "
                "instead of the official DICE/HD95."
            )
            LOG.warning("%s", self.note)
        else:
            self.note = (f"Geometric metrics: TotalSegmentator fast 'total' ({self.runner.executable}), DICE and HD95; "
                         f"missed classes: {config.missing_hd95!r}, {MISSING_POLICY_TEXT[config.missing_hd95]}.")

    @property
    def method(self) -> str:
        return "totalsegmentator" if self.runner is not None else "bone_threshold"

    def score(
        self, case: CaseFiles, gt_img: sitk.Image, gt: np.ndarray, pred: np.ndarray, mask: np.ndarray | None
    ) -> tuple[dict[str, float], tuple[ClassScore, ...]]:
        if self.runner is None:
            return {"bone_dice": bone_dice(gt, pred, mask=mask)}, ()
        seg_dir = self.config.out_dir / "segmentations"
        seg_dir.mkdir(parents=True, exist_ok=True)
        pred_img = sitk.GetImageFromArray(pred)
        pred_img.CopyInformation(gt_img)
        pred_labels = self.runner.segment(pred_img)
        gt_labels = self._gt_labels(case, gt_img)
        for name, labels in (("sct", pred_labels), ("ct", gt_labels)):
            out = sitk.GetImageFromArray(labels)
            out.CopyInformation(gt_img)
            sitk.WriteImage(out, str(seg_dir / f"{case.case_id}_{name}.nii.gz"), True)
        classes = region_classes(case.region) if case.region in REGION_CLASSES else all_region_classes()
        scores = segmentation_metrics(
            gt_labels,
            pred_labels,
            classes=classes,
            spacing_mm=gt_img.GetSpacing()[::-1],
            missing_hd95=self.config.missing_hd95,
        )
        return {"DICE": scores.dice, "HD95": scores.hd95_mm}, scores.per_class

    def _gt_labels(self, case: CaseFiles, gt_img: sitk.Image) -> np.ndarray:
        assert self.runner is not None
        if case.gt_seg is None:
            return self.runner.segment(gt_img)
        img, labels = _read(case.gt_seg)
        _check_grid(case.gt, gt_img, sitk.GetArrayFromImage(gt_img), case.gt_seg, img, labels)
        return labels


def _progress(items: list[CaseFiles], enabled: bool) -> Any:
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc="evaluate", unit="case")


def evaluate_folder(config: EvaluationConfig) -> EvaluationResult:
    """Score every case of ``config.gt_dir`` and write the outputs listed in the module docstring.

    Raises:
        FileNotFoundError: missing folders or files (see :func:`synthct.metrics.cases.pair_cases`), or
            TotalSegmentator required but unavailable.
        ValueError: a prediction, mask or input whose shape differs from its ground truth.
        RuntimeError: TotalSegmentator failed.
    """
    cases, skipped = pair_cases_skipping(
        config.pred_dir,
        config.gt_dir,
        masks_dir=config.masks_dir,
        inputs_dir=config.inputs_dir,
        gt_seg_dir=config.gt_seg_dir if config.segmentation != "bone" else None,
        skip_missing=config.skip_missing,
    )
    LOG.info("evaluating %d case(s) from %s against %s", len(cases), config.pred_dir, config.gt_dir)
    skip_note = (f"{len(skipped)} case(s) without a prediction skipped (--skip-missing), not scored: "
                 f"{', '.join(skipped)}." if skipped else "")
    if skip_note:
        LOG.warning("%s", skip_note)
    validate_pairs(cases)  # every pair before anything is written
    config.out_dir.mkdir(parents=True, exist_ok=True)
    segmenter = _Segmenter(config)
    rows: list[dict[str, Any]] = []
    per_class: list[dict[str, Any]] = []
    montages: dict[str, str] = {}
    for case in _progress(cases, config.progress):
        gt_img, gt = _read(case.gt)
        pred_img, pred = _read(case.pred)
        _check_grid(case.gt, gt_img, gt, case.pred, pred_img, pred)
        mask = None
        if case.mask is not None:
            mask_img, mask = _read(case.mask)
            _check_grid(case.gt, gt_img, gt, case.mask, mask_img, mask)
        row: dict[str, Any] = {"case_id": case.case_id, "region": case.region, **image_metrics(gt, pred, mask=mask)}
        seg_values, class_scores = segmenter.score(case, gt_img, gt, pred, mask)
        row.update(seg_values)
        row.update(config.extra_columns.get(case.case_id, {}))
        rows.append(row)
        per_class += [{"case_id": case.case_id, **asdict(s)} for s in class_scores]
        LOG.debug("%s: %s", case.case_id, row)
        if config.report:
            montages[case.case_id] = _montage(config, case, gt_img, gt, pred, mask, row)

    by_region: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_region.setdefault(row["region"], []).append(row)
    result = EvaluationResult(
        results=rows,
        aggregates=aggregate_rows(rows),
        aggregates_by_region={r: aggregate_rows(v) for r, v in sorted(by_region.items())},
        segmentation_method=segmenter.method,
        notes=[segmenter.note, *filter(None, [skip_note]), *config.extra_notes],
        skipped=skipped,
    )
    _write_outputs(config, result, per_class, montages)
    return result


def _montage(
    config: EvaluationConfig,
    case: CaseFiles,
    gt_img: sitk.Image,
    gt: np.ndarray,
    pred: np.ndarray,
    mask: np.ndarray | None,
    row: dict[str, Any],
) -> str:
    input_arr = None
    if case.input is not None:
        input_img, input_arr = _read(case.input)
        _check_grid(case.gt, gt_img, gt, case.input, input_img, input_arr)
    title = f"{case.case_id} ({case.region})  " + "  ".join(
        f"{k} {v:.4g}" for k, v in row.items() if k not in ("case_id", "region")
    )
    rel = Path("qa") / f"{case.case_id}.png"
    (gt_shown, pred_shown, mask_shown, input_shown), spacing_zyx = report.to_display_orientation(
        (gt, pred, mask, input_arr), gt_img)
    assert gt_shown is not None and pred_shown is not None  # given, so reoriented (None only for a None input)
    report.save_montage(
        config.out_dir / rel,
        ct=gt_shown,
        sct=pred_shown,
        spacing_zyx=spacing_zyx,
        mask=mask_shown,
        input_image=input_shown,
        title=title,
    )
    return rel.as_posix()


def _write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)
    return path


def _write_outputs(
    config: EvaluationConfig, result: EvaluationResult, per_class: list[dict[str, Any]], montages: dict[str, str]
) -> None:
    out = config.out_dir
    payload = {
        "results": result.results,
        "aggregates": result.aggregates,
        "aggregates_by_region": result.aggregates_by_region,
        "segmentation_method": result.segmentation_method,
        "hd95_missing_class_policy": {"name": config.missing_hd95, "official": config.missing_hd95 == "exclude",
                                      "meaning": MISSING_POLICY_TEXT[config.missing_hd95]},
        "notes": result.notes,
        "skipped_cases": result.skipped,
    }
    result.files["json"] = out / "metrics.json"
    result.files["json"].write_text(json.dumps(payload, indent=2), encoding="utf-8")  # inf/nan as Infinity/NaN
    result.files["per_case_csv"] = _write_csv(out / "metrics_per_case.csv", result.results)
    agg_rows = [
        {"scope": scope, "metric": metric, **stats}
        for scope, aggs in [("all", result.aggregates), *result.aggregates_by_region.items()]
        for metric, stats in aggs.items()
    ]
    result.files["aggregates_csv"] = _write_csv(out / "metrics_aggregates.csv", agg_rows)
    if per_class:
        result.files["per_class_csv"] = _write_csv(out / "segmentation_per_class.csv", per_class)
    if config.report:
        mae_by_region: dict[str, list[float]] = {}
        for row in result.results:
            mae_by_region.setdefault(row["region"], []).append(float(row["mae"]))
        result.files["boxplot"] = report.save_region_boxplot(out / "qa" / "mae_by_region.png", mae_by_region)
        result.files["index"] = report.write_index(
            out / "index.html",
            results=result.results,
            aggregates=result.aggregates,
            montages=montages,
            boxplot="qa/mae_by_region.png",
            notes=result.notes,
            aggregates_by_region=result.aggregates_by_region,
            per_class=per_class,
        )
    values = [float(v) for r in result.results for k, v in r.items() if k not in ("case_id", "region")]
    if not all(math.isfinite(v) for v in values):
        LOG.warning("some per-case values are not finite (e.g. PSNR = inf for identical images); see %s", out)
    LOG.info("wrote %s", ", ".join(p.name for p in result.files.values()))
