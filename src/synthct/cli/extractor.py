"""``synthct extractor labels``: build the compact-anatomy training set of the AFP feature extractor."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("extractor", help="build the AFP feature extractor's training data")
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
    labels.set_defaults(func=_labels)


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
    print(build_extractor_dataset(args.ct_dir, args.out, runner=runner, labels_dir=args.labels))
    return 0
