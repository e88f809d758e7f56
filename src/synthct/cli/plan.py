"""``synthct plan DATASET``: stock fingerprint + the plugin planners (plain U-Net and nnResU-Net), 3d_fullres only."""

from __future__ import annotations

import argparse

from synthct.paths import add_path_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="fingerprint and plan a converted dataset (3d_fullres, synthct plans)",
                       description="Runs nnU-Net's fingerprint extraction, then the synthct planners: "
                                   "synthctUNetPlans (plain U-Net, upsample+conv decoder) and synthctResUNetPlans "
                                   "(nnResU-Net, 2+2 residual blocks, upsample+conv decoder).")
    p.add_argument("dataset", help="dataset id (e.g. 511) or name")
    p.add_argument("--arch", choices=("unet", "resunet", "both"), default="both")
    p.add_argument("--gpu-memory-gb", type=float, default=8.0,
                   help="GPU memory target of the patch/batch choice (nnU-Net default 8; e.g. 24 or 40 on big GPUs)")
    p.add_argument("--patch-size", type=int, nargs=3, metavar=("Z", "Y", "X"), default=None,
                   help="fix the patch size (the topology follows it)")
    p.add_argument("--batch-size", type=int, default=None, help="fix the batch size")
    p.add_argument("--base-features", type=int, default=32, help="features of the first stage (default 32)")
    p.add_argument("--max-features", type=int, default=320, help="feature cap (default 320)")
    p.add_argument("--num-processes", type=int, default=4, help="fingerprint worker processes")
    p.add_argument("--clean", action="store_true", help="recompute an existing fingerprint")
    p.add_argument("--intensity-samples", type=int, default=100_000_000,
                   help="body voxels sampled for the fingerprint's intensity statistics (stock 1e8)")
    p.add_argument("--input-skip", action="store_true",
                   help="CBCT only: add a learnable affine skip from the input to the output (the untrained model "
                        "maps CBCT HU to CT HU as identity; the U-Net learns the correction). Not in the paper.")
    p.add_argument("--cbct-normalization", choices=("dataset", "per-case"), default="dataset",
                   help="CBCT input normalisation: dataset (default, the paper's: clip + dataset z-score) or per-case "
                        "(clip + median/IQR z-score inside the body; cancels a global HU offset and scale)")
    add_path_arguments(p, "raw", "preprocessed")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from synthct.paths import use_nnunet_paths

    use_nnunet_paths(raw=args.raw, preprocessed=args.preprocessed).require("raw", "preprocessed")
    from synthct.network.planning import plan_dataset

    archs = ("unet", "resunet") if args.arch == "both" else (args.arch,)
    written = plan_dataset(args.dataset, archs=archs, gpu_memory_gb=args.gpu_memory_gb,
                           num_processes=args.num_processes, patch_size=args.patch_size, batch_size=args.batch_size,
                           base_features=args.base_features, max_features=args.max_features,
                           overwrite_fingerprint=args.clean, intensity_samples=args.intensity_samples,
                           input_skip=args.input_skip,
                           cbct_normalization=args.cbct_normalization)
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0
