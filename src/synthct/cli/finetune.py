"""``synthct finetune DATASET FOLD --init CKPT --extractor DIR``: stage-2 fine-tuning with masked L1 + AFP."""

from __future__ import annotations

import argparse
from pathlib import Path

from synthct.paths import add_path_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune a stage-1 model with L1 + AFP (frozen anatomy extractor)",
                       description="Initialises from a stage-1 checkpoint (strict, output layer included), fresh "
                                   "SGD + PolyLR; defaults: 500 epochs x 250 iterations, lr 1e-3, "
                                   "L = 5 * masked L1 + AFP.")
    p.add_argument("dataset", help="dataset id (e.g. 511) or name")
    p.add_argument("fold", help="fold 0-4 of the 5-fold split, or 'all'")
    p.add_argument("--init", required=True, help="stage-1 checkpoint (.pth) to start from")
    p.add_argument("--extractor", required=True, help="results folder of the AFP extractor (synthct extractor train)")
    p.add_argument("--extractor-fold", default="auto",
                   help="fold of the extractor checkpoint (default auto: 0 if it has the checkpoint, else 'all')")
    p.add_argument("--extractor-checkpoint", choices=("final", "best"), default="final")
    p.add_argument("--extractor-init", choices=("trained", "random"), default="trained",
                   help="random: the extractor's architecture with seeded random weights (a control)")
    p.add_argument("--plans", default="synthctResUNetPlans", help="plans name (default synthctResUNetPlans)")
    p.add_argument("--configuration", default="3d_fullres")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default 500)")
    p.add_argument("--iterations", type=int, default=None, help="training iterations per epoch (default 250)")
    p.add_argument("--val-iterations", type=int, default=None, help="validation iterations per epoch (default 50)")
    p.add_argument("--lr", type=float, default=None, help="initial learning rate (default 1e-3)")
    p.add_argument("--l1-weight", type=float, default=None, help="weight of the masked L1 term (default 5)")
    p.add_argument("--afp-weight", type=float, default=None, help="weight of the AFP term (default 1)")
    p.add_argument("--masked", action="store_true", default=None, help="AFP inside the body mask only")
    p.add_argument("--feature-norm", choices=("instance", "channel"), default=None,
                   help="normalise the feature maps before the L1 (default none)")
    p.add_argument("--augmentation", choices=("paper", "mild"), default=None, help="preset (default paper = none)")
    p.add_argument("--save-every", type=int, default=None, help="epochs between checkpoint_latest writes (50)")
    p.add_argument("--seed", type=int, default=None, help="seed Python/numpy/torch at the start (default unseeded)")
    p.add_argument("--device", default="auto", help="auto | cuda | cuda:N | cpu")
    p.add_argument("--continue", dest="continue_training", action="store_true",
                   help="resume the fine-tune from its latest (else final, else best) checkpoint")
    p.add_argument("--no-validation", action="store_true", help="skip the final validation")
    add_path_arguments(p, "preprocessed", "results")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from synthct.paths import use_nnunet_paths

    use_nnunet_paths(preprocessed=args.preprocessed, results=args.results).require("preprocessed", "results")
    from synthct.training.afp_trainer import afp_config
    from synthct.training.run import train

    for label, path in (("--init", Path(args.init)), ("--extractor", Path(args.extractor))):
        if not path.exists():
            raise FileNotFoundError(f"{label} not found: {path}")
    extractor_fold = _extractor_fold(Path(args.extractor), args.extractor_fold, args.extractor_checkpoint)
    config = afp_config(epochs=args.epochs, iterations_per_epoch=args.iterations,
                        val_iterations_per_epoch=args.val_iterations, initial_lr=args.lr,
                        l1_weight=args.l1_weight, afp_weight=args.afp_weight, afp_masked=args.masked,
                        afp_feature_norm=args.feature_norm, augmentation=args.augmentation,
                        save_every=args.save_every, seed=args.seed, afp_extractor=str(Path(args.extractor).resolve()),
                        afp_fold=extractor_fold, afp_checkpoint=args.extractor_checkpoint,
                        init_checkpoint=str(Path(args.init).resolve()), afp_extractor_init=args.extractor_init)
    out = train(args.dataset, args.fold, args.plans, config, "afp", args.configuration, args.device,
                args.continue_training, validate=not args.no_validation)
    print(out)
    return 0


def _extractor_fold(results: Path, fold: str, checkpoint: str) -> int | str:
    """The extractor fold whose ``checkpoint_<checkpoint>.pth`` (or bundled ``.safetensors``) exists ("auto": 0,
    else "all"), checked before any training folder is created."""
    from synthct.losses.feature_extractor import extractor_checkpoint

    candidates = ["0", "all"] if fold == "auto" else [fold]
    for name in candidates:
        if extractor_checkpoint(results, name, checkpoint).is_file():
            return name if name == "all" else int(name)
    wanted = " or ".join(f"fold_{c}/checkpoint_{checkpoint}.pth" for c in candidates)
    found = sorted({p.parent.name for p in results.glob(f"fold_*/checkpoint_{checkpoint}.*")})
    raise FileNotFoundError(f"no extractor checkpoint {wanted} (or .safetensors) in {results}"
                            f"{f' (found: {found}; pass --extractor-fold)' if found else ''}")
