"""``synthct route``: which model serves each (task, region) in ``resources/models.json`` (list or change)."""

from __future__ import annotations

import argparse
from pathlib import Path

from synthct.contracts import synthrad
from synthct.network.manifest import parse_fold

MODELS_JSON = Path("resources") / "models.json"


def add_routing_arguments(p: argparse.ArgumentParser) -> None:
    """``--models`` and the inference settings of a routed entry (shared with ``synthct export --route``)."""
    p.add_argument("--models", type=Path, default=MODELS_JSON,
                   help=f"routing file (default {MODELS_JSON} in the current folder: run from the repository root)")
    p.add_argument("--step", type=float, default=None,
                   help="tile step (default: the entry's when re-routing the same model; for a new model its "
                   "synthct.json's extra.inference, else the paper's 0.3, mean blending, no TTA)")
    p.add_argument("--blend", choices=("mean", "gaussian"), default=None)
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None, help="mirroring TTA")
    p.add_argument("--note", default="", help="free text stored with the entry")
    p.add_argument("--force", action="store_true", help="route a model to a region it was not trained for")


def settings_of(args: argparse.Namespace) -> dict:
    return {k: v for k, v in (("step", args.step), ("blend", args.blend), ("tta", args.tta)) if v is not None}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "route", help="list or change which model folder process.py uses per (task, region)",
        description="synthct route --list shows what each (task, region) runs and whether it is a demo model. "
                    "synthct route TASK REGION MODEL_DIR (REGION may be 'all') validates the model (it must load) "
                    "and updates resources/models.json atomically, keeping a copy in models.json.bak.")
    p.add_argument("task", nargs="?", choices=synthrad.task_names())
    p.add_argument("region", nargs="?", choices=(*synthrad.region_codes(), synthrad.ALL_REGIONS))
    p.add_argument("model_dir", nargs="?", type=Path)
    p.add_argument("--list", action="store_true", help="show the routing and exit")
    p.add_argument("--folds", type=parse_fold, nargs="+", default=None, help="folds to ensemble (default: all)")
    add_routing_arguments(p)
    p.set_defaults(func=_run)


def print_routes(models_json: Path) -> int:
    """Print the routing table; returns 1 when some entry does not resolve."""
    from synthct.challenge.routing_edit import list_routes

    rows = list_routes(models_json)
    print(f"{models_json}:")
    print(f"{'task':5} {'region':6} {'kind':7} {'model':34} settings")
    for r in rows:
        if r.problem:
            print(f"{r.task:5} {r.region:6} {'NONE':7} {r.problem}")
        else:
            print(f"{r.task:5} {r.region:6} {'DEMO' if r.demo else 'trained':7} {r.model:34} {r.settings}")
    return 1 if any(r.problem for r in rows) else 0


def _run(args: argparse.Namespace) -> int:
    from synthct.challenge.routing_edit import set_route

    if args.list:
        if args.task or args.region or args.model_dir:
            raise ValueError("--list takes no TASK REGION MODEL_DIR")
        return print_routes(args.models)
    if not (args.task and args.region and args.model_dir):
        raise ValueError("give TASK REGION MODEL_DIR (e.g. synthct route mri HN weights/mri/HN), or --list")
    regions = synthrad.region_codes() if args.region == synthrad.ALL_REGIONS else (args.region,)
    for region in regions:
        set_route(args.models, args.task, region, args.model_dir, folds=args.folds, settings=settings_of(args),
                  note=args.note, force=args.force)
    print_routes(args.models)
    return 0
