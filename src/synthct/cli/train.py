"""``synthct train DATASET FOLD``: train one fold with the plugin trainer (stage 1, L1), then validate it.

Several GPUs: ``torchrun --nproc_per_node N -m synthct.cli.main train DATASET FOLD``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from synthct.paths import add_path_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one fold (nnU-Net trainer plugin, L1 stage) and validate it",
                       description="Defaults reproduce the paper: 1000 epochs x 250 iterations, SGD 1e-2 with "
                                   "PolyLR, no augmentation, masked L1, best checkpoint by EMA of validation MAE.")
    p.add_argument("dataset", help="dataset id (e.g. 511) or name")
    p.add_argument("fold", help="fold 0-4 of the 5-fold split, or 'all'")
    p.add_argument("--plans", default="synthctResUNetPlans", help="plans name (default synthctResUNetPlans)")
    p.add_argument("--configuration", default="3d_fullres")
    p.add_argument("--trainer", choices=("l1",), default="l1")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default 1000; the paper also used 1500)")
    p.add_argument("--iterations", type=int, default=None, help="training iterations per epoch (default 250)")
    p.add_argument("--val-iterations", type=int, default=None, help="validation iterations per epoch (default 50)")
    p.add_argument("--lr", type=float, default=None, help="initial learning rate (default 1e-2)")
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default=None,
                   help="sgd (default: nnU-Net's, momentum 0.99, Nesterov) or adamw (AMSGrad; use e.g. --lr 1e-3)")
    p.add_argument("--augmentation", choices=("paper", "mild", "cbct-drift"), default=None,
                   help="preset (default paper = none; cbct-drift: CBCT calibration drift on the input, in HU)")
    p.add_argument("--init", default=None, metavar="WEIGHTS",
                   help="initialise the network from a checkpoint .pth or an exported model's .safetensors (strict)")
    p.add_argument("--mirror-lr", action="store_true", default=None, help="with mild: left-right mirroring")
    p.add_argument("--background-weight", type=float, default=None,
                   help="L1 weight outside the body mask, 0-1 (default 1)")
    p.add_argument("--save-every", type=int, default=None, help="epochs between checkpoint_latest writes (50)")
    p.add_argument("--val-step", type=float, default=None, help="tile step of the final validation (0.3)")
    p.add_argument("--channels-last", action="store_true", default=None,
                   help="opt-in: channels-last 3-D memory format (not yet measured faster on a GPU)")
    p.add_argument("--compile", default=None,
                   choices=("stock", "off", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
                   help="torch.compile: stock (default: nnU-Net's nnUNet_compile rule), off, or a mode")
    p.add_argument("--seed", type=int, default=None, help="seed Python/numpy/torch at the start (default unseeded)")
    p.add_argument("--device", default="auto", help="auto | cuda | cuda:N | cpu")
    p.add_argument("--continue", dest="continue_training", action="store_true",
                   help="resume from the fold's latest (else final, else best) checkpoint")
    p.add_argument("--no-validation", action="store_true", help="skip the final validation")
    p.add_argument("--validation-only", action="store_true", help="only run the final validation")
    p.add_argument("--val-best", action="store_true", help="validate checkpoint_best instead of the final weights")
    add_path_arguments(p, "preprocessed", "results")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from synthct.paths import use_nnunet_paths

    use_nnunet_paths(preprocessed=args.preprocessed, results=args.results).require("preprocessed", "results")
    from synthct.training.config import TrainConfig
    from synthct.training.run import train

    config = TrainConfig().updated(epochs=args.epochs, iterations_per_epoch=args.iterations,
                                   val_iterations_per_epoch=args.val_iterations, initial_lr=args.lr,
                                   optimizer=args.optimizer,
                                   augmentation=args.augmentation, mirror_lr=args.mirror_lr,
                                   background_weight=args.background_weight, save_every=args.save_every, seed=args.seed,
                                   val_tile_step=args.val_step, channels_last=args.channels_last,
                                   compile=args.compile,
                                   init_checkpoint=None if args.init is None else str(Path(args.init).resolve()))
    out = train(args.dataset, args.fold, args.plans, config, args.trainer, args.configuration, args.device,
                args.continue_training, validate=not args.no_validation, validation_only=args.validation_only,
                validate_best=args.val_best)
    print(out)
    return 0
