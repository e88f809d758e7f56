"""synthct.metrics: the SynthRAD2025 evaluation, re-implemented in numpy/scipy, plus folder evaluation and QA.

- :mod:`~synthct.metrics.image`: MAE, PSNR and masked 3-D MS-SSIM as ``SynthRAD2025/evaluation`` (17cac47)
  ``image_metrics.py``;
- :mod:`~synthct.metrics.segmentation`: Dice / HD95 per TotalSegmentator class as ``segmentation_metrics.py``
  (MONAI ``DiceMetric`` / ``HausdorffDistanceMetric``), region class lists, a weight-free bone Dice;
- :mod:`~synthct.metrics.evaluate`: ``synthct evaluate`` (pairing, aggregation, JSON/CSV, QA report).

Importing this package loads numpy, scipy and SimpleITK only: matplotlib, tqdm and TotalSegmentator (a subprocess)
are used on demand, and monai never.
"""

from synthct.io.totalseg import TotalSegmentator, find_totalsegmentator
from synthct.metrics.cases import CaseFiles, case_id_of, pair_cases, region_of
from synthct.metrics.evaluate import EvaluationConfig, EvaluationResult, aggregate, evaluate_folder
from synthct.metrics.image import DATA_RANGE, HU_RANGE, MS_SSIM_WEIGHTS, image_metrics, mae, ms_ssim, psnr
from synthct.metrics.segmentation import (
    REGION_CLASSES,
    ClassScore,
    SegmentationScores,
    bone_dice,
    dice,
    hd95,
    region_classes,
    segmentation_metrics,
)

__all__ = [
    "DATA_RANGE",
    "HU_RANGE",
    "MS_SSIM_WEIGHTS",
    "REGION_CLASSES",
    "CaseFiles",
    "ClassScore",
    "EvaluationConfig",
    "EvaluationResult",
    "SegmentationScores",
    "TotalSegmentator",
    "aggregate",
    "bone_dice",
    "case_id_of",
    "dice",
    "evaluate_folder",
    "find_totalsegmentator",
    "hd95",
    "image_metrics",
    "mae",
    "ms_ssim",
    "pair_cases",
    "psnr",
    "region_classes",
    "region_of",
    "segmentation_metrics",
]
