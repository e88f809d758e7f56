"""``synthct predict``: one image + body mask → synthetic CT (.mha), with a model folder."""

from __future__ import annotations

import argparse

from synthct.network.manifest import parse_fold

#: Choices of the switches, spelled out so that ``synthct --help`` does not import torch (a test pins them to
#: ``synthct.inference.accel``).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
RESIDENT_DTYPES = ("float32", "float16", "bfloat16")
DEFAULT_COMPILE_CACHE = "/tmp/synthct-torch-compile"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="synthesise a CT from one MR/CBCT image and its body mask")
    p.add_argument("--model", required=True, help="synthct model folder (synthct.json + weights)")
    p.add_argument("--image", required=True, help="input MR or CBCT image (.mha, .nii.gz)")
    p.add_argument("--mask", required=True, help="body mask on the same grid (0/1)")
    p.add_argument("--out", required=True, help="output sCT path (.mha)")
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


def accel_options(args: argparse.Namespace):  # noqa: ANN201 (AccelOptions, imported lazily)
    """The :class:`~synthct.inference.accel.AccelOptions` of the parsed switches."""
    from synthct.inference.accel import AccelOptions

    return AccelOptions(warmup=args.warmup, channels_last=args.channels_last, compile_mode=args.compile_mode,
                        compile_cache_dir=args.compile_cache, cuda_graphs=args.cuda_graphs,
                        resident_dtype=args.resident_weights, resample_on_device=args.resample_on_device)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from synthct.inference.predictor import InferenceOptions, SyntheticCTPredictor
    from synthct.io.image import read_image, write_image_atomic

    options = InferenceOptions(step=args.step, blend=args.blend, tta=args.tta,
                               folds=None if args.folds is None else tuple(args.folds), tile_batch=args.tile_batch,
                               amp_dtype=args.amp, skip_outside_mask=not args.no_skip, device=args.device,
                               accel=accel_options(args))
    image, geometry, _ = read_image(args.image)
    mask, mask_geometry, _ = read_image(args.mask)
    problem = geometry.mismatch(mask_geometry)
    if problem:
        raise ValueError(f"{args.mask}: mask grid differs from the image: {problem}")
    hu = SyntheticCTPredictor(args.model, options).predict(image, mask, geometry.spacing_zyx)
    print(write_image_atomic(hu, geometry, Path(args.out)))
    return 0
