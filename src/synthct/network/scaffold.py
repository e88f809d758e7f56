"""Randomly initialised training results folders in the stock nnU-Net layout.

Used by the tests (export → load → predict without training) and by ``synthct demo`` until trained demo weights are
bundled. The folder looks like what the training pipeline writes: plans.json with a ``synthct`` block, dataset.json,
and ``fold_k/checkpoint_final.pth`` with the keys of ``nnUNetTrainer.save_checkpoint``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from synthct.contracts import synthrad
from synthct.contracts.normalization import InputNormalization, TargetNormalization
from synthct.network.architectures import synthrad_arch_kwargs
from synthct.network.build import architecture_block, build_network
from synthct.typing import PathLike

#: Stock-like trainer name recorded in scaffolded checkpoints.
TRAINER_NAME = "SynthCTTrainerL1"


def scaffold_plans(
    task: str,
    regions: Sequence[str],
    class_name: str,
    arch_kwargs: dict[str, Any],
    patch_size: Sequence[int],
    spacing: Sequence[float],
    input_normalization: InputNormalization,
    target_normalization: TargetNormalization,
    description: str,
) -> dict[str, Any]:
    """nnU-Net plans (3d_fullres only) with the ``synthct`` block that ``synthct export`` reads."""
    return {
        "dataset_name": f"Dataset900_SynthCT_{task}",
        "plans_name": "synthctPlans",
        "original_median_spacing_after_transp": list(spacing),
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {
            "3d_fullres": {
                "data_identifier": "synthctPlans_3d_fullres",
                "preprocessor_name": "SynthCTPreprocessor",
                "batch_size": 2,
                "patch_size": list(patch_size),
                "spacing": list(spacing),
                "normalization_schemes": [input_normalization.scheme, "noNorm"],
                "use_mask_for_norm": [True, False],
                "architecture": architecture_block(class_name, arch_kwargs),
                "batch_dice": False,
            }
        },
        "synthct": {
            "task": task,
            "regions": list(regions),
            "description": description,
            "input_channels": 1,
            "input_normalization": input_normalization.to_json(),
            "target_normalization": target_normalization.to_json(),
        },
    }


def random_training_results(
    out_dir: PathLike,
    task: str = "mri",
    regions: Sequence[str] | None = None,
    features: Sequence[int] = (8, 16, 32),
    residual: bool = True,
    patch_size: Sequence[int] = (16, 64, 64),
    spacing: Sequence[float] = (3.0, 1.0, 1.0),
    folds: Sequence[int] = (0,),
    input_normalization: InputNormalization | None = None,
    target_normalization: TargetNormalization | None = None,
    mirror_axes: Sequence[int] | None = None,
    seed: int = 0,
    description: str = "RANDOM WEIGHTS (untrained): plumbing demo only, not a synthetic-CT model",
) -> Path:
    """Write a results folder with randomly initialised networks; returns its path.

    ``regions``: the manifest's regions (None = every region of ``synthrad.REGIONS``).
    """
    out = Path(out_dir)
    regions = synthrad.region_codes() if regions is None else regions
    if input_normalization is None:
        input_normalization = (InputNormalization("zscore_mask") if task == "mri"
                               else InputNormalization("clip_zscore", (-1024.0, 3071.0), -500.0, 500.0))
    target_normalization = target_normalization or TargetNormalization(mean=-300.0, std=500.0)
    class_name = "ResidualUNetUpsample" if residual else "PlainConvUNetUpsample"
    plans = scaffold_plans(task, regions, class_name, synthrad_arch_kwargs(features, residual), patch_size, spacing,
                           input_normalization, target_normalization, description)
    out.mkdir(parents=True, exist_ok=True)
    (out / "plans.json").write_text(json.dumps(plans, indent=2))
    dataset = {"channel_names": {"0": task.upper(), "1": "noNorm"}, "labels": {"background": 0, "body": 1},
               "numTraining": 0, "file_ending": ".mha"}
    (out / "dataset.json").write_text(json.dumps(dataset, indent=2))
    arch = plans["configurations"]["3d_fullres"]["architecture"]
    for fold in folds:
        torch.manual_seed(seed + fold)
        network = build_network(arch, 1, 1)
        optimizer = torch.optim.SGD(network.parameters(), lr=1e-2, momentum=0.99, nesterov=True)
        checkpoint: dict[str, Any] = {
            "network_weights": network.state_dict(),
            "optimizer_state": optimizer.state_dict(),
            "grad_scaler_state": None,
            "logging": {"mean_fg_dice": [], "ema_fg_dice": [], "train_losses": [], "val_losses": [], "lrs": []},
            "_best_ema": None,
            "current_epoch": 0,
            "init_args": {"configuration": "3d_fullres", "fold": fold, "device": torch.device("cpu")},
            "trainer_name": TRAINER_NAME,
            "inference_allowed_mirroring_axes": tuple(mirror_axes) if mirror_axes else None,
        }
        (out / f"fold_{fold}").mkdir(exist_ok=True)
        torch.save(checkpoint, out / f"fold_{fold}" / "checkpoint_final.pth")
    return out


def random_segmentation_results(
    out_dir: PathLike,
    n_classes: int = 7,
    features: Sequence[int] = (4, 8, 16, 16, 16, 16),
    spacing: Sequence[float] = (3.0, 1.0, 1.0),
    patch_size: Sequence[int] = (16, 64, 64),
    ct_properties: dict[str, float] | None = None,
    seed: int = 0,
) -> Path:
    """A stock-layout nnU-Net *segmentation* results folder (PlainConvUNet, CTNormalization) with random weights.

    Stands in for a trained feature extractor in tests; ``ct_properties`` are the plans'
    ``foreground_intensity_properties_per_channel['0']`` (default: TotalSegmentator-like CT statistics).
    """
    out = Path(out_dir)
    props = ct_properties or {"mean": -50.39, "std": 503.39, "percentile_00_5": -1004.0, "percentile_99_5": 1588.0}
    arch = architecture_block("PlainConvUNet", synthrad_arch_kwargs(features, residual=False))
    plans = {
        "dataset_name": "Dataset901_CompactExtractor",
        "plans_name": "nnUNetPlans",
        "foreground_intensity_properties_per_channel": {"0": props},
        "configurations": {"3d_fullres": {"patch_size": list(patch_size), "spacing": list(spacing),
                                          "normalization_schemes": ["CTNormalization"], "architecture": arch}},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "plans.json").write_text(json.dumps(plans, indent=2))
    labels = {"background": 0, **{f"class_{i}": i for i in range(1, n_classes)}}
    (out / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": labels}, indent=2))
    torch.manual_seed(seed)
    network = build_network(arch, 1, n_classes)
    (out / "fold_0").mkdir(exist_ok=True)
    torch.save({"network_weights": network.state_dict(), "trainer_name": "nnUNetTrainer",
                "inference_allowed_mirroring_axes": (0, 1, 2)}, out / "fold_0" / "checkpoint_final.pth")
    return out
