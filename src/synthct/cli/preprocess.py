"""``synthct preprocess DATASET``: run the plugin preprocessor over every training case."""

from __future__ import annotations

import argparse

from synthct.paths import add_path_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("preprocess", help="preprocess a planned dataset with the synthct preprocessor",
                       description="No crop; MR z-score inside the body mask or CBCT clip + dataset z-score; CT "
                                   "target kept in HU. Both synthct plans share the preprocessed data.")
    p.add_argument("dataset", help="dataset id (e.g. 511) or name")
    p.add_argument("--plans", default="synthctResUNetPlans", help="plans name (default synthctResUNetPlans)")
    p.add_argument("--configuration", default="3d_fullres")
    p.add_argument("--num-processes", type=int, default=4, help="worker processes (1 = in this process)")
    add_path_arguments(p, "raw", "preprocessed")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from synthct.paths import use_nnunet_paths

    use_nnunet_paths(raw=args.raw, preprocessed=args.preprocessed).require("raw", "preprocessed")
    from synthct.preprocessing.preprocessor import preprocess_dataset

    print(preprocess_dataset(args.dataset, args.plans, args.configuration, args.num_processes))
    return 0
