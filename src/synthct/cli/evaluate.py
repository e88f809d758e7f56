"""``synthct evaluate``: score a folder of synthetic CTs as the SynthRAD2025 leaderboard does (docs/evaluation.md)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score sCTs against CTs (MAE, PSNR, MS-SSIM, Dice/HD95) and write a QA report",
        description=(
            "Score every case of --gt: MAE, PSNR and MS-SSIM exactly as the SynthRAD2025 evaluation, and DICE/HD95 "
            "on TotalSegmentator 'total' (fast) label maps when its weights are on disk (else a bone Dice, HU > 250). "
            "Files pair by case id: the stem, or its last 7 characters (sct_1HNA001.mha <-> 1HNA001.mha); "
            "--gt/--masks/--inputs may be a SynthRAD2025 release folder (Task1/HN/<id>/{ct,mask,mr}.mha)."
        ),
    )
    parser.add_argument("--pred", type=Path, required=True, help="folder of synthetic CTs (.mha/.nii.gz/.nii)")
    parser.add_argument("--gt", type=Path, required=True, help="folder of ground-truth CTs (<id>.mha, or a "
                        "SynthRAD2025 release folder such as Task1/HN with <id>/ct.mha); defines the cases")
    parser.add_argument("--out", type=Path, required=True, help="output folder for metrics.json, CSVs and the report")
    parser.add_argument("--masks", type=Path, default=None, help="folder of body masks (<id>.mha, or a release folder "
                        "with <id>/mask.mha; default: score every voxel)")
    parser.add_argument("--inputs", type=Path, default=None, help="folder of MR/CBCT inputs (<id>.mha, or a release "
                        "folder with <id>/mr.mha or cbct.mha), shown in the montages")
    parser.add_argument(
        "--gt-seg", type=Path, default=None, help="TotalSegmentator label maps of the CTs (default: segment the CTs)"
    )
    parser.add_argument(
        "--segmentation",
        choices=("auto", "totalsegmentator", "bone"),
        default="auto",
        help="geometric metric: TotalSegmentator if available (auto), required, or bone Dice only",
    )
    parser.add_argument(
        "--totalseg-weights",
        type=Path,
        default=None,
        help="TotalSegmentator nnU-Net results folder (default ~/.totalsegmentator/nnunet/results)",
    )
    parser.add_argument("--totalseg-executable", default="TotalSegmentator", help="the TotalSegmentator command")
    parser.add_argument(
        "--missing-hd95",
        choices=("exclude", "diagonal"),
        default="exclude",
        help="HD95 of a class missing from the sCT segmentation: left out of the mean (default; the official "
        "SynthRAD2025 / MONAI 1.6.1 policy) or the image diagonal (opt-in, not the leaderboard's)",
    )
    parser.add_argument("--skip-missing", action="store_true", help="score only the cases that have a prediction "
                        "(e.g. when predict skipped broken cases); the skipped ids are listed in metrics.json "
                        "(skipped_cases) and the report")
    parser.add_argument("--no-report", action="store_true", help="skip the PNG montages, box plot and index.html")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=_run)
    return parser


def _check_out(out: Path) -> None:
    """--out is replaced as a whole: refuse a non-empty folder that is not an earlier evaluation (no metrics.json)."""
    if out.is_dir() and any(out.iterdir()) and not (out / "metrics.json").is_file():
        raise FileExistsError(f"--out {out} is a non-empty folder without metrics.json (not an earlier evaluation): "
                              "evaluate replaces its --out, choose a new or empty folder")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} exists and is not a folder")


def _run(args: argparse.Namespace) -> int:
    from synthct.io.staging import staged_folder

    _check_out(args.out)
    # built in a hidden sibling and renamed into place: an interrupted or failed run leaves the old --out (or none),
    # and a rerun leaves no stale QA images of the previous one
    with staged_folder(args.out, overwrite=True, what="evaluation folder") as stage:
        result = _evaluate(args, stage)
    for metric, stats in result.aggregates.items():
        LOG.info("%-9s mean %.4f  std %.4f  (n=%d)", metric, stats["mean"], stats["std"], stats["count"])
    if result.skipped:
        LOG.warning("skipped (no prediction): %s", ", ".join(result.skipped))
    LOG.info("results in %s", args.out)
    return 0


def _evaluate(args: argparse.Namespace, out_dir: Path) -> Any:
    from synthct.metrics.evaluate import EvaluationConfig, evaluate_folder

    config = EvaluationConfig(
        pred_dir=args.pred,
        gt_dir=args.gt,
        out_dir=out_dir,
        masks_dir=args.masks,
        inputs_dir=args.inputs,
        gt_seg_dir=args.gt_seg,
        segmentation=args.segmentation,
        totalseg_weights=args.totalseg_weights,
        totalseg_executable=args.totalseg_executable,
        missing_hd95=args.missing_hd95,
        report=not args.no_report,
        progress=not args.no_progress,
        skip_missing=args.skip_missing,
    )
    return evaluate_folder(config)
