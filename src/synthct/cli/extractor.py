"""``synthct extractor labels``: build the compact-anatomy training set of the AFP feature extractor;
``synthct extractor train``: train it (stock nnU-Net segmentation) at the synthesis spacing."""

from __future__ import annotations

import argparse

from synthct.paths import add_path_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("extractor", help="the AFP feature extractor: training data, training, bundling")
    steps = p.add_subparsers(dest="extractor_command", required=True, metavar="STEP")
    labels = steps.add_parser(
        "labels", help="TotalSegmentator 'total' on CTs → 7 compact groups → nnU-Net raw dataset",
        description="Runs the TotalSegmentator CLI in a subprocess (its weights must already be on disk) or reads "
                    "existing 'total' label maps (--labels), maps the 117 classes to background, organs, cardiac, "
                    "muscles, bones, ribs, vertebrae, and writes imagesTr/, labelsTr/, dataset.json.")
    labels.add_argument("ct_dir", help="folder of CTs in HU (.mha, .nii.gz)")
    labels.add_argument("out", help="nnU-Net raw dataset folder to create, e.g. $nnUNet_raw/Dataset901_CompactAnatomy")
    labels.add_argument("--labels", default=None, help="existing TotalSegmentator 'total' label maps (skip running it)")
    labels.add_argument("--weights", default=None, help="TotalSegmentator weights folder (default "
                        "~/.totalsegmentator/nnunet/results)")
    labels.add_argument("--fast", action="store_true", help="use the 3 mm model (Dataset297) instead of 1.5 mm")
    labels.add_argument("--executable", default="TotalSegmentator")
    labels.add_argument("--force", action="store_true", help="replace an existing output folder (never merged)")
    labels.set_defaults(func=_labels)

    train = steps.add_parser(
        "train", help="stock nnU-Net segmentation training of the extractor at the synthesis spacing",
        description="Stock fingerprint, ExperimentPlanner (target spacing overwritten), preprocessing and "
                    "nnUNetTrainer on the raw dataset written by 'labels'; the results folder it prints is what "
                    "'synthct finetune --extractor' takes.")
    train.add_argument("dataset", help="raw dataset folder inside nnUNet_raw (DatasetNNN_Name), its id or name")
    train.add_argument("--spacing", type=float, nargs=3, required=True, metavar=("Z", "Y", "X"),
                       help="target spacing in mm: the synthesis model's spacing")
    train.add_argument("--fold", default="0", help="fold 0-4 or 'all' (default 0; 'all' below five cases)")
    train.add_argument("--epochs", type=int, default=1000)
    train.add_argument("--iterations", type=int, default=250, help="training iterations per epoch")
    train.add_argument("--val-iterations", type=int, default=50, help="validation iterations per epoch")
    train.add_argument("--patch-size", type=int, nargs=3, default=None, metavar=("Z", "Y", "X"),
                       help="override the planned patch size (topology re-derived)")
    train.add_argument("--base-features", type=int, default=None, help="override the first stage's features")
    train.add_argument("--max-features", type=int, default=None, help="override the feature cap")
    train.add_argument("--batch-size", type=int, default=None, help="override the planned batch size")
    train.add_argument("--num-processes", type=int, default=2, help="fingerprint / preprocessing processes")
    train.add_argument("--device", default="auto", help="auto | cuda | cuda:N | cpu")
    add_path_arguments(train, "raw", "preprocessed", "results")
    train.set_defaults(func=_train)

    export = steps.add_parser(
        "export", help="bundle a trained extractor: plans, dataset.json, fp16 safetensors (what finetune takes)",
        description="Copies plans.json and dataset.json of the results folder printed by 'train' and writes "
                    "fold_<fold>/checkpoint_<checkpoint>.safetensors in fp16 (loaded back as float32), plus an "
                    "optional PROVENANCE.md; the copy is checked to load before it replaces OUT.")
    export.add_argument("results", help="extractor results folder (nnUNetTrainer__synthctExtractorPlans__3d_fullres)")
    export.add_argument("out", help="folder to write (replaced if it exists)")
    export.add_argument("--fold", default="all", help="fold to bundle (default all)")
    export.add_argument("--checkpoint", choices=("final", "best"), default="final")
    export.add_argument("--provenance", default=None, help="a Markdown file to copy as PROVENANCE.md")
    export.set_defaults(func=_export)


def _labels(args: argparse.Namespace) -> int:
    from pathlib import Path

    from synthct.io.totalseg import find_totalsegmentator
    from synthct.preprocessing.extractor_dataset import build_extractor_dataset

    runner = None
    if args.labels is None:
        runner, reason = find_totalsegmentator(None if args.weights is None else Path(args.weights), args.executable,
                                               fast=args.fast)
        if runner is None:
            raise FileNotFoundError(f"cannot run TotalSegmentator: {reason}. Download its weights on a machine with "
                                    "internet access (TotalSegmentator --download_weights / totalseg_download_weights) "
                                    "or pass --labels with existing label maps")
    if Path(args.out).exists() and not args.force:  # before TotalSegmentator runs
        raise FileExistsError(f"extractor dataset folder {args.out} exists; pass --force to replace it")
    print(build_extractor_dataset(args.ct_dir, args.out, runner=runner, labels_dir=args.labels, overwrite=args.force))
    return 0


def _export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from synthct.losses.feature_extractor import export_extractor

    fold = args.fold if args.fold == "all" else int(args.fold)
    provenance = Path(args.provenance).read_text() if args.provenance else ""
    print(export_extractor(args.results, args.out, fold, args.checkpoint, provenance))
    return 0


def _train(args: argparse.Namespace) -> int:
    from synthct.paths import use_nnunet_paths

    use_nnunet_paths(args.raw, args.preprocessed, args.results).require("raw", "preprocessed", "results")
    from synthct.training.extractor_training import train_extractor

    out = train_extractor(args.dataset, args.spacing, args.fold, args.epochs, args.iterations, args.val_iterations,
                          args.patch_size, args.base_features, args.max_features, args.batch_size, args.device,
                          args.num_processes)
    print(out)
    return 0
