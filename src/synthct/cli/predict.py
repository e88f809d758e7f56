"""``synthct predict``: one image + body mask → synthetic CT, or a whole folder of cases (``-i DIR -o OUT``).

Both modes run every case through the functions of ``process.py`` (:func:`~synthct.challenge.inputs.load_pair` →
:func:`~synthct.challenge.algorithm.load_predictor` → :func:`~synthct.challenge.algorithm.synthesise`), so the rules
of the README's bad-input table, the task check and the finite-output check hold for all three.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from synthct.contracts import synthrad
from synthct.network.manifest import parse_fold

if TYPE_CHECKING:
    from synthct.challenge.inputs import Case
    from synthct.inference.accel import AccelOptions
    from synthct.inference.predictor import InferenceOptions

MODELS_JSON = Path("resources") / "models.json"
#: Choices of the switches, spelled out so that ``synthct --help`` does not import torch (a test pins them to
#: ``synthct.inference.accel``).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
RESIDENT_DTYPES = ("float32", "float16", "bfloat16")
DEFAULT_COMPILE_CACHE = "/tmp/synthct-torch-compile"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="synthesise CTs: one image (--image/--mask/--out) or a folder of cases (-i/-o)",
        description="One case: --model DIR --image IMG --mask MASK --out SCT. A folder of cases (a SynthRAD2025 "
                    "release Task1/HN/<id>/{mr,mask}.mha, grand-challenge case folders, or flat images with --masks): "
                    "-i DIR -o OUT writes OUT/<id>.mha with the models and settings of resources/models.json, as "
                    "process.py (or --model DIR for every case); done cases are skipped; under torchrun the cases "
                    "are shared over the ranks (docs/workflow.md).")
    p.add_argument("-i", "--input", type=Path, default=None, help="folder of cases (batch mode)")
    p.add_argument("-o", "--output", type=Path, default=None, help="output folder of <id>.mha (batch mode)")
    p.add_argument("--masks", type=Path, default=None, help="batch: folder of <id>.mha body masks (flat layout)")
    p.add_argument("--task", choices=synthrad.task_names(), default=None,
                   help="task of the images where the file name (mr/cbct, a SynthRAD id) does not say it; a model "
                        "of another task is refused")
    p.add_argument("--region", choices=synthrad.region_codes(), default=None,
                   help="region where neither the path nor the id says it")
    p.add_argument("--models", type=Path, default=None,
                   help=f"batch: routing file (default {MODELS_JSON} in the current folder), as process.py")
    p.add_argument("--overwrite", action="store_true", help="batch: predict cases whose output exists too")
    p.add_argument("--no-progress", action="store_true", help="batch: hide the progress bar over the cases")
    p.add_argument("--model", default=None, help="synthct model folder; in batch mode it replaces the routing")
    p.add_argument("--image", default=None, help="one case: input MR or CBCT image (.mha, .nii.gz)")
    p.add_argument("--mask", default=None, help="one case: body mask on the same grid (0/1)")
    p.add_argument("--out", default=None, help="one case: output sCT path (.mha); parent folders are created")
    p.add_argument("--step", type=float, default=0.3, help="tile step as a fraction of the patch (default 0.3)")
    p.add_argument("--blend", choices=("mean", "gaussian"), default="mean")
    p.add_argument("--tta", action="store_true", help="mirroring TTA (only for models trained with mirroring)")
    p.add_argument("--folds", type=parse_fold, nargs="+", default=None, help="folds to ensemble (default: all)")
    p.add_argument("--tile-batch", type=int, default=0, help="tiles per forward pass (0 = automatic)")
    p.add_argument("--amp", choices=("float16", "bfloat16", "float32"), default="float16", help="CUDA autocast dtype")
    p.add_argument("--no-skip", action="store_true", help="compute tiles outside the body mask too")
    p.add_argument("--device", default="auto")
    g = p.add_argument_group("opt-in tile-engine switches (not the default: not yet measured faster on a GPU)")
    g.add_argument("--warmup", action="store_true", help="one forward per tile-batch shape before the stitching loop")
    g.add_argument("--channels-last", action="store_true", help="channels-last 3-D memory format")
    g.add_argument("--compile", dest="compile_mode", default=None, choices=COMPILE_MODES,
                   help="torch.compile the networks in this mode")
    g.add_argument("--compile-cache", default=DEFAULT_COMPILE_CACHE,
                   help=f"Inductor cache folder (default {DEFAULT_COMPILE_CACHE}; TORCHINDUCTOR_CACHE_DIR wins)")
    g.add_argument("--cuda-graphs", action="store_true", help="replay the tile-batch forward as a CUDA graph")
    g.add_argument("--resident-weights", choices=RESIDENT_DTYPES, default="float32",
                   help="keep convolution weights in this dtype on the GPU (must equal --amp)")
    g.add_argument("--resample-on-device", action="store_true", help="resample on the compute device")
    p.set_defaults(func=_run)


def accel_options(args: argparse.Namespace) -> AccelOptions:
    """The :class:`~synthct.inference.accel.AccelOptions` of the parsed switches."""
    from synthct.inference.accel import AccelOptions

    return AccelOptions(warmup=args.warmup, channels_last=args.channels_last, compile_mode=args.compile_mode,
                        compile_cache_dir=args.compile_cache, cuda_graphs=args.cuda_graphs,
                        resident_dtype=args.resident_weights, resample_on_device=args.resample_on_device)


def _options(args: argparse.Namespace) -> InferenceOptions:  # (imports deferred: torch)
    from synthct.inference.predictor import InferenceOptions

    return InferenceOptions(step=args.step, blend=args.blend, tta=args.tta,
                            folds=None if args.folds is None else tuple(args.folds), tile_batch=args.tile_batch,
                            amp_dtype=args.amp, skip_outside_mask=not args.no_skip, device=args.device,
                            accel=accel_options(args))


def _run(args: argparse.Namespace) -> int:
    batch = args.input is not None or args.output is not None
    single = [n for n in ("image", "mask", "out") if getattr(args, n) is not None]
    if batch:
        if single or args.input is None or args.output is None:
            raise ValueError("batch mode needs -i/--input and -o/--output, without --image/--mask/--out")
        return _run_batch(args)
    if len(single) != 3 or args.model is None:
        raise ValueError("give --model, --image, --mask and --out (one case), or -i DIR -o OUT (a folder of cases)")
    return _run_single(args)


def _single_case(args: argparse.Namespace) -> Case:
    """The validated case of ``--image``/``--mask`` (:func:`~synthct.challenge.inputs.load_pair`).

    Raises:
        CaseError: the task is unknown, or the image or mask breaks a rule of the bad-input table.
    """
    from synthct.challenge.batch_inputs import region_from_name, task_from_name
    from synthct.challenge.errors import CaseError
    from synthct.challenge.inputs import load_pair

    image = Path(args.image)
    task = args.task or task_from_name(image)
    if task is None:
        raise CaseError(image, f"task unknown: the file name says neither mr/cbct nor a SynthRAD id; pass --task "
                        f"{'|'.join(synthrad.task_names())}")
    region = args.region or region_from_name(image) or UNKNOWN_REGION
    return load_pair(task, region, image, Path(args.mask))


#: The region of a single case whose region neither ``--region`` nor the file name gives (not used to predict).
UNKNOWN_REGION = "unknown"


def _run_single(args: argparse.Namespace) -> int:
    from synthct.challenge.algorithm import load_predictor, synthesise
    from synthct.challenge.errors import CaseError
    from synthct.challenge.routing import Route

    out = Path(args.out)
    try:  # before the prediction, not after it
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{out.parent}: cannot create the output folder ({exc.strerror or exc})") from None
    route = Route(model_dir=Path(args.model).resolve(), options=_options(args))
    try:
        case = _single_case(args)
        path = synthesise(load_predictor(route, case.task), case, out)
    except CaseError as exc:
        raise ValueError(str(exc)) from None
    print(path)
    return 0


def _run_batch(args: argparse.Namespace) -> int:
    from synthct.challenge.batch import BatchConfig, predict_batch
    from synthct.challenge.batch_inputs import discover_cases
    from synthct.challenge.errors import CaseError
    from synthct.challenge.routing import Route

    cases = discover_cases(args.input, masks_dir=args.masks, task=args.task, region=args.region)
    route = None
    models = None
    if args.model is not None:
        route = Route(model_dir=Path(args.model).resolve(), options=_options(args))
    else:
        models = (args.models or MODELS_JSON).resolve()
        if not models.is_file():
            raise FileNotFoundError(f"{models}: routing file not found (run from the repository root, pass "
                                    "--models resources/models.json, or --model DIR)")
    config = BatchConfig(out_dir=args.output, models_json=models, model_route=route, device=args.device,
                         overwrite=args.overwrite, progress=not args.no_progress)
    try:
        summary = predict_batch(cases, config)
    except CaseError as exc:
        raise ValueError(str(exc)) from None
    return 1 if summary.failed else 0
