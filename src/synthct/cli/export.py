"""``synthct export TRAINING_RESULTS_DIR OUT_DIR``: training results → inference model folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from synthct.network.manifest import parse_fold


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="turn an nnU-Net training results folder into a synthct model folder",
                       description="Strip optimizer state and logs; write synthct.json + safetensors weights.")
    p.add_argument("results_dir", help="nnU-Net results folder (plans.json, dataset.json, fold_k/checkpoint_*.pth)")
    p.add_argument("out_dir", help="model folder to create")
    p.add_argument("--checkpoint", choices=("final", "best"), default="final")
    p.add_argument("--folds", type=parse_fold, nargs="+", default=None, help="folds to export (default: all found)")
    p.add_argument("--configuration", default="3d_fullres")
    p.add_argument("--fp16", action="store_true", help="store weights in fp16 (half the size)")
    p.add_argument("--force", action="store_true", help="replace an existing OUT_DIR")
    p.add_argument("--route", action="store_true",
                   help="then route the model's task and regions to OUT_DIR in resources/models.json (synthct route)")
    p.add_argument("--models", type=Path, default=Path("resources") / "models.json",
                   help="routing file for --route (default resources/models.json in the current folder)")
    p.add_argument("--licence", default=None, metavar="TEXT",
                   help="licence of the weights, recorded in synthct.json (weights trained on SynthRAD2025 data "
                   "inherit its CC BY-NC 4.0, e.g. --licence 'CC BY-NC 4.0 (trained on SynthRAD2025 data)')")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from synthct.network.export import export_model

    out = export_model(args.results_dir, args.out_dir, checkpoint=args.checkpoint, folds=args.folds,
                       configuration=args.configuration, half=args.fp16, overwrite=args.force,
                       licence=args.licence)
    print(out)
    if args.route:
        from synthct.challenge.routing_edit import route_model

        route_model(args.models, out)
    return 0
