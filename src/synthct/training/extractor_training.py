"""Stock nnU-Net segmentation training of the AFP feature extractor at the synthesis spacing.

Steps (all stock nnunetv2 2.8.1 classes, constructed directly — no trainer/planner discovery by name):

1. ``DatasetFingerprintExtractor`` on the raw dataset written by ``synthct extractor labels``;
2. ``ExperimentPlanner`` with ``overwrite_target_spacing`` = the synthesis spacing (Z, Y, X); optional overrides of
   the 3d_fullres patch size / features / batch size for small runs (the topology is re-derived for a new patch);
3. ``DefaultPreprocessor`` for ``3d_fullres``;
4. ``nnUNetTrainer`` (stock loss, augmentation, schedule) with ``plans['continue_training']`` set, as
   :mod:`synthct.training.run` does.

The result is a stock results folder (``plans.json``, ``dataset.json``, ``fold_k/checkpoint_final.pth``) that
:func:`synthct.losses.feature_extractor.load_feature_extractor` accepts. With ``nnUNet_n_proc_DA=0`` data
augmentation runs in the main process.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path

from synthct.paths import at_least_one_augmentation_worker

LOG = logging.getLogger(__name__)

#: Plans name of the extractor (kept apart from any other plans of the same dataset).
EXTRACTOR_PLANS = "synthctExtractorPlans"
_NAME = re.compile(r"^Dataset(\d{3})_.+$")


def resolve_raw_dataset(dataset: str | int | Path) -> str:
    """Dataset name (``DatasetNNN_X``) from an id, a name, or a folder inside ``$nnUNet_raw``."""
    from nnunetv2 import paths

    from synthct.preprocessing.datasets import dataset_name

    text = str(dataset)
    candidate = Path(text)
    if candidate.is_dir() or "/" in text:
        if not _NAME.match(candidate.name):
            raise ValueError(f"{candidate}: a raw dataset folder must be named DatasetNNN_Name")
        raw = paths.nnUNet_raw
        if raw is None or candidate.resolve().parent != Path(raw).resolve():
            raise ValueError(f"{candidate} is not inside nnUNet_raw ({raw}); set --raw to its parent folder")
        return candidate.name
    return dataset_name(text)


def plan_extractor(dataset: str | int | Path, spacing: Sequence[float], patch_size: Sequence[int] | None = None,
                   base_features: int | None = None, max_features: int | None = None,
                   batch_size: int | None = None, num_processes: int = 2, plans_name: str = EXTRACTOR_PLANS) -> dict:
    """Fingerprint + stock ``ExperimentPlanner`` at ``spacing`` (Z, Y, X mm) + stock preprocessing of 3d_fullres.

    Returns the saved plans.
    """
    from nnunetv2 import paths
    from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
    from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.utilities.json_export import recursive_fix_for_json_export

    if len(spacing) != 3 or any(float(s) <= 0 for s in spacing):
        raise ValueError(f"spacing must be three positive values (Z Y X mm), got {list(spacing)}")
    name = resolve_raw_dataset(dataset)
    fingerprint = DatasetFingerprintExtractor(name, max(1, num_processes), verbose=False)
    fingerprint.show_progress_bar = False
    fingerprint.run(overwrite_existing=False)
    planner = ExperimentPlanner(name, plans_name=plans_name,
                                overwrite_target_spacing=[float(s) for s in spacing])
    # the stock VRAM estimate calls torch.set_num_threads(get_allowed_n_proc_DA()), which fails for nnUNet_n_proc_DA=0
    with at_least_one_augmentation_worker():
        plans = planner.plan_experiment()
    config = plans["configurations"]["3d_fullres"]
    arch = config["architecture"]["arch_kwargs"]
    if patch_size is not None:
        _, strides, kernels, patch, _ = get_pool_and_conv_props(
            [float(s) for s in config["spacing"]], [int(p) for p in patch_size],
            planner.UNet_featuremap_min_edge_length, 999999)
        n = len(strides)
        arch.update({"n_stages": n, "kernel_sizes": kernels, "strides": strides,
                     "n_conv_per_stage": list(planner.UNet_blocks_per_stage_encoder[:n]),
                     "n_conv_per_stage_decoder": list(planner.UNet_blocks_per_stage_decoder[:n - 1])})
        config["patch_size"] = [int(v) for v in patch]
    if base_features is not None or max_features is not None or patch_size is not None:
        base = base_features or planner.UNet_base_num_features
        top = max_features or planner.UNet_max_features_3d
        arch["features_per_stage"] = [min(base * 2 ** i, top) for i in range(arch["n_stages"])]
    if batch_size is not None:
        config["batch_size"] = int(batch_size)
    # only 3d_fullres is used; drop the others so preprocessing and loading cannot pick them
    plans["configurations"] = {"3d_fullres": config}
    recursive_fix_for_json_export(plans)
    saved = Path(paths.nnUNet_preprocessed) / name / f"{plans_name}.json"
    saved.write_text(json.dumps(plans, indent=2))  # replaces the stock file (which also holds 2d / 3d_lowres)
    DefaultPreprocessor(verbose=False).run(name, "3d_fullres", plans_name, max(1, num_processes))
    LOG.info("extractor plans %s: spacing %s, patch %s, features %s", saved, config["spacing"],
             config["patch_size"], arch["features_per_stage"])
    return plans


def train_extractor(dataset: str | int | Path, spacing: Sequence[float], fold: int | str = "all",
                    epochs: int = 1000, iterations: int = 250, val_iterations: int = 50,
                    patch_size: Sequence[int] | None = None, base_features: int | None = None,
                    max_features: int | None = None, batch_size: int | None = None, device: str = "auto",
                    num_processes: int = 2, plans_name: str = EXTRACTOR_PLANS) -> Path:
    """Plan, preprocess and train the extractor with the stock ``nnUNetTrainer``; returns the results folder
    (``.../nnUNetTrainer__<plans>__3d_fullres``) for ``load_feature_extractor(folder, fold)``.

    ``fold`` "all" trains on every case (needed below five cases: the stock 5-fold split needs five).
    """
    from nnunetv2 import paths
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from synthct.network.device import resolve_device
    from synthct.network.manifest import parse_fold
    from synthct.training.run import check_fold

    for label, value in (("epochs", epochs), ("iterations", iterations), ("val_iterations", val_iterations)):
        if int(value) < 1:
            raise ValueError(f"{label} must be positive, got {value}")
    raw_name = resolve_raw_dataset(dataset)
    raw_json = Path(paths.nnUNet_raw) / raw_name / "dataset.json"
    if not raw_json.is_file():
        raise FileNotFoundError(f"{raw_json} not found (run synthct extractor labels first)")
    splits = Path(paths.nnUNet_preprocessed) / raw_name / "splits_final.json"
    check_fold(parse_fold(fold), int(json.loads(raw_json.read_text()).get("numTraining", 0)),
               splits if splits.is_file() else None, raw_name, "synthct extractor train ... --fold all")
    plans = plan_extractor(dataset, spacing, patch_size, base_features, max_features, batch_size, num_processes,
                           plans_name)
    name = plans["dataset_name"]
    dataset_json = json.loads((Path(paths.nnUNet_preprocessed) / name / "dataset.json").read_text())
    plans = copy.deepcopy(plans)
    plans["continue_training"] = False
    torch_device = resolve_device(device, local_rank=0)
    trainer = nnUNetTrainer(plans, "3d_fullres", parse_fold(fold), dataset_json, torch_device)
    trainer.num_epochs = int(epochs)
    trainer.num_iterations_per_epoch = int(iterations)
    trainer.num_val_iterations_per_epoch = int(val_iterations)
    trainer.run_training()  # its checkpoints load weights-only: read_nnunet_checkpoint allows numpy log values
    out = Path(trainer.output_folder_base)
    LOG.info("extractor trained: %s", out)
    return out
