"""``synthct demo``: the main job on the bundled sample case (see :mod:`synthct.challenge.demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from synthct.contracts import synthrad


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the grand-challenge job on a bundled sample (MR: porcine; CBCT: real "
                       "pancreas CBCT, held-out slab)")
    p.add_argument("--task", choices=synthrad.task_names(), default="mri", help="mri (default) or cbct")
    p.add_argument("--out", default="demo_output", help="work/output folder (default demo_output)")
    p.add_argument("--repo", default=None, help="repository root holding samples/ and resources/ (default: found "
                   "from the current folder)")
    p.add_argument("--device", default="auto")
    p.add_argument("--dose", action="store_true", help="with --task cbct: also photon and proton dose of the raw CBCT "
                   "and the sCT against the real CT plan with the patient's contours (make demo-dose; docs/dose.md)")
    p.set_defaults(func=_run)


def _find_repo(start: Path) -> Path:
    for folder in (start, *start.parents):
        if (folder / "samples" / "porcine").is_dir() and (folder / "resources").is_dir():
            return folder
    raise FileNotFoundError(f"no synthct repository (samples/porcine, resources/) at or above {start}; use --repo")


def _run(args: argparse.Namespace) -> int:
    from synthct.challenge.demo import run_demo

    if args.dose and args.task != "cbct":
        raise ValueError("--dose needs --task cbct (the dose demo uses the real CBCT sample and its contours)")
    if args.dose:
        from synthct.dose.engine import require_pyradplan

        require_pyradplan()  # fail before the sCT is made when the dose extra is missing
    repo = Path(args.repo).resolve() if args.repo else _find_repo(Path.cwd().resolve())
    result = run_demo(repo, Path(args.out).resolve(), args.device, args.task)
    print(f"sCT written: {result.output}")
    print(f"preview:     {result.preview}")
    print(f"model: {result.model_label}")
    print(f"HU range [{result.hu_min:.0f}, {result.hu_max:.0f}]; against the sample's real CT inside the body mask: "
          f"MAE {result.mae:.1f} HU, PSNR {result.psnr:.2f} dB, MS-SSIM {result.ms_ssim:.4f}")
    if args.dose:
        _dose(repo, Path(args.out).resolve(), result.output)
    return 0


def _dose(repo: Path, out: Path, sct: Path) -> None:
    """The dose part of the CBCT demo (synthct.dose.demo): table to stdout, files under ``out``."""
    from synthct.challenge.demo import DEMO_CASES
    from synthct.dose.demo import run_dose_demo, table

    case = DEMO_CASES["cbct"]
    assert case.slices is not None
    result = run_dose_demo(repo / "samples" / case.sample, case.slices, sct, out)
    print(f"dose (photon {len(result['plans']['photon']['settings']['gantry_angles'])} beams IMRT, proton "
          f"{len(result['plans']['proton']['settings']['gantry_angles'])} fields IMPT, target "
          f"{result['target']['name']} {result['target']['volume_cc']:.0f} cc, {result['seconds']:.0f} s):")
    print(table(result), end="")
    print(f"dose preview: {out / 'dose_preview.png'}; full output: {out / 'dose'}")
