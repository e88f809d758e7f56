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
    parser.add_argument("--dose", action="store_true", help="also photon and proton dose (synthct dose's default "
                        "plans per region; needs the dose extra, docs/dose.md): dose columns in metrics.json and "
                        "index.html, each case's dose output under OUT/dose/")
    parser.add_argument("--dose-workers", type=int, default=1, help="dose cases run in parallel (default 1)")
    parser.add_argument("--dose-structures", type=Path, default=None, help="folder of <id> label maps for the dose "
                        "plans (with --dose-structure-names); default: a synthetic target, marked as such")
    parser.add_argument("--dose-structure-names", type=Path, default=None, help="JSON label value -> name")
    parser.add_argument("--no-report", action="store_true", help="skip the PNG montages, box plot and index.html")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=_run)
    return parser


def _dose_columns(args: argparse.Namespace) -> tuple[dict[str, dict[str, float]], tuple[str, ...], Path]:
    """Run the dose folder mode into a work folder beside --out (resumable); its per-case columns and notes."""
    from synthct.dose.case import DoseCase
    from synthct.dose.engine import require_pyradplan
    from synthct.dose.folder import SUMMARY_METRICS, FolderJob, run_folder
    from synthct.dose.settings import MODALITIES, default_settings

    require_pyradplan()
    work = args.out.parent / f".{args.out.name}.dose-work"
    if args.masks is None:
        raise ValueError("--dose needs --masks (the body defines the patient for the dose engine)")
    template = DoseCase(case_id="", ct=Path(), scts={}, mask=Path(), settings=(),
                        structure_names=args.dose_structure_names)
    job = FolderJob(pred_dir=args.pred, gt_dir=args.gt, masks_dir=args.masks, out_dir=work, template=template,
                    settings_for=lambda region: tuple(default_settings(m, region) for m in MODALITIES),
                    structures_dir=args.dose_structures, workers=args.dose_workers, skip_missing=args.skip_missing)
    summary = run_folder(job)
    columns = {f"{m}_{k}" for m in MODALITIES for k in SUMMARY_METRICS}
    out = {row["case"]: {c: float(row.get(c, float("nan"))) for c in sorted(columns)} for row in summary["cases"]}
    synthetic = sorted(r["case"] for r in summary["cases"] if r["synthetic_target"])
    notes: tuple[str, ...] = (
        "Dose: photon IMRT and proton IMPT plans (synthct dose defaults per region, pyRadPlan) on each CT, recomputed "
        "on the sCT; dose MAE in % of Rx over D_ct >= 90 % Rx, DVH error, gamma 2 %/2 mm global; per-case outputs in "
        "dose/ (docs/dose.md).",)
    if synthetic:
        notes += (f"Dose targets are SYNTHETIC (a sphere at the body centroid) for {len(synthetic)} case(s): "
                  f"{', '.join(synthetic[:20])}.",)
    failed = [s["case"] for s in summary["this_run"] if s["status"] != "done"]
    if failed:
        raise RuntimeError(f"dose failed for case(s) {', '.join(failed)}; see {work}/dose_summary.json")
    return out, notes, work


def _check_out(out: Path) -> None:
    """--out is replaced as a whole: refuse a non-empty folder that is not an earlier evaluation (no metrics.json)."""
    if out.is_dir() and any(out.iterdir()) and not (out / "metrics.json").is_file():
        raise FileExistsError(f"--out {out} is a non-empty folder without metrics.json (not an earlier evaluation): "
                              "evaluate replaces its --out, choose a new or empty folder")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} exists and is not a folder")


def _run(args: argparse.Namespace) -> int:
    import shutil

    from synthct.io.staging import staged_folder

    _check_out(args.out)
    # the dose work folder sits beside --out and survives a failed run (its finished cases are reused)
    dose_columns, dose_notes, dose_work = _dose_columns(args) if args.dose else ({}, (), None)
    # built in a hidden sibling and renamed into place: an interrupted or failed run leaves the old --out (or none),
    # and a rerun leaves no stale QA images of the previous one
    with staged_folder(args.out, overwrite=True, what="evaluation folder") as stage:
        result = _evaluate(args, stage, dose_columns, dose_notes)
        if dose_work is not None:
            shutil.move(str(dose_work), str(stage / "dose"))
    for metric, stats in result.aggregates.items():
        LOG.info("%-9s mean %.4f  std %.4f  (n=%d)", metric, stats["mean"], stats["std"], stats["count"])
    if result.skipped:
        LOG.warning("skipped (no prediction): %s", ", ".join(result.skipped))
    LOG.info("results in %s", args.out)
    return 0


def _evaluate(args: argparse.Namespace, out_dir: Path, dose_columns: dict[str, dict[str, float]],
              dose_notes: tuple[str, ...]) -> Any:
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
        extra_columns=dose_columns,
        extra_notes=dose_notes,
    )
    return evaluate_folder(config)
