"""``synthct demo``: the main job on the bundled sample case (see :mod:`synthct.challenge.demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the grand-challenge job on a bundled sample (MR: porcine; CBCT: real "
                       "pancreas CBCT, held-out slab)")
    p.add_argument("--task", choices=("mri", "cbct"), default="mri", help="mri (default) or cbct")
    p.add_argument("--out", default="demo_output", help="work/output folder (default demo_output)")
    p.add_argument("--repo", default=None, help="repository root holding samples/ and resources/ (default: found "
                   "from the current folder)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_run)


def _find_repo(start: Path) -> Path:
    for folder in (start, *start.parents):
        if (folder / "samples" / "porcine").is_dir() and (folder / "resources").is_dir():
            return folder
    raise FileNotFoundError(f"no synthct repository (samples/porcine, resources/) at or above {start}; use --repo")


def _run(args: argparse.Namespace) -> int:
    from synthct.challenge.demo import run_demo

    repo = Path(args.repo).resolve() if args.repo else _find_repo(Path.cwd().resolve())
    result = run_demo(repo, Path(args.out).resolve(), args.device, args.task)
    print(f"sCT written: {result.output}")
    print(f"preview:     {result.preview}")
    print(f"model: {result.model_label}")
    print(f"HU range [{result.hu_min:.0f}, {result.hu_max:.0f}]; against the sample's real CT inside the body mask: "
          f"MAE {result.mae:.1f} HU, PSNR {result.psnr:.2f} dB, MS-SSIM {result.ms_ssim:.4f}")
    return 0
