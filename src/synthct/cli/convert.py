"""``synthct convert SYNTHRAD_ROOT OUT --task {1,2}``: SynthRAD2025 download → nnU-Net raw dataset(s)."""

from __future__ import annotations

import argparse

from synthct.contracts import synthrad


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="SynthRAD2025 training data → nnU-Net raw datasets (one per task and region)",
                       description="Validate every case (missing files, size/geometry mismatch, empty mask) and "
                                   "write channel 0 = MR/CBCT, channel 1 = CT clipped to [-1024, 3071] HU "
                                   "(unnormalised), label = body mask. Skipped cases are reported by id.")
    p.add_argument("root", metavar="SYNTHRAD_ROOT", help="download root holding Task1/ and Task2/ (or a Task folder)")
    p.add_argument("out", metavar="OUT", nargs="?", default=None,
                   help="nnU-Net raw folder to write the datasets into (default: $nnUNet_raw)")
    p.add_argument("--task", type=int, choices=[t.number for t in synthrad.TASKS], required=True,
                   help=", ".join(f"{t.number}: {t.modality} → CT" for t in synthrad.TASKS))
    p.add_argument("--region", choices=(*synthrad.region_codes(), synthrad.ALL_REGIONS), default=None,
                   help="only this region, or 'all' for one dataset with every region (default: one per region)")
    p.add_argument("--exclude", metavar="IDS_FILE", default=None, help="text file of case ids to leave out")
    p.add_argument("--id-base", type=int, default=500,
                   help="dataset id = base + 10*task + (all 0, " + ", ".join(f"{r.code} {r.dataset_offset}" for r
                   in synthrad.REGIONS) + "); default 500 (Task 1 HN = 511)")
    p.add_argument("--workers", type=int, default=4, help="parallel reader/writer threads")
    p.add_argument("--force", action="store_true", help="replace existing dataset folders")
    p.set_defaults(func=_run)


def output_folder(out: str | None) -> str:
    """OUT, else $nnUNet_raw; a missing or empty one is an error that names the variable."""
    from synthct.paths import RAW, resolve_nnunet_paths

    if out == "":
        raise ValueError(f"OUT is an empty string: is the variable in the command (e.g. \"${RAW}\") unset? "
                         f"export {RAW}=/path/to/nnUNet_raw")
    if out is None:
        raw = resolve_nnunet_paths().raw
        if raw is None:
            raise ValueError(f"no OUT given and ${RAW} is unset: give OUT or export {RAW}=/path/to/nnUNet_raw")
        return str(raw)
    return out


def _run(args: argparse.Namespace) -> int:
    from synthct.preprocessing.dataset_conversion import convert_synthrad

    reports = convert_synthrad(args.root, output_folder(args.out), args.task, args.region, args.exclude, args.id_base,
                               args.workers, args.force)
    for report in reports:
        print(f"{report.dataset_dir}: {len(report.converted)} converted, {len(report.excluded)} excluded, "
              f"{len(report.skipped)} skipped")
        for case, reason in sorted(report.skipped.items()):
            print(f"  skipped {case}: {reason}")
    return 0
