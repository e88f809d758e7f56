"""``synthct predict``: one image + body mask → synthetic CT (.mha), with a model folder."""

from __future__ import annotations

import argparse

from synthct.network.manifest import parse_fold


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
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from synthct.inference.predictor import InferenceOptions, SyntheticCTPredictor
    from synthct.io.image import read_image, write_image_atomic

    options = InferenceOptions(step=args.step, blend=args.blend, tta=args.tta,
                               folds=None if args.folds is None else tuple(args.folds), tile_batch=args.tile_batch,
                               amp_dtype=args.amp, skip_outside_mask=not args.no_skip, device=args.device)
    image, geometry, _ = read_image(args.image)
    mask, mask_geometry, _ = read_image(args.mask)
    problem = geometry.mismatch(mask_geometry)
    if problem:
        raise ValueError(f"{args.mask}: mask grid differs from the image: {problem}")
    hu = SyntheticCTPredictor(args.model, options).predict(image, mask, geometry.spacing_zyx)
    print(write_image_atomic(hu, geometry, Path(args.out)))
    return 0
