"""``synthct plan``: stock fingerprint, then the plugin planners (3d_fullres only) with a ``synthct`` block.

Two planners, instantiated directly (nnU-Net can only discover planners inside its own package):

* :class:`SynthCTUNetPlanner` (plans ``synthctUNetPlans``): the paper's plain U-Net,
  :class:`~synthct.network.architectures.PlainConvUNetUpsample` (2 convs per stage, upsample+conv decoder).
* :class:`SynthCTResUNetPlanner` (plans ``synthctResUNetPlans``): the paper's nnResU-Net,
  :class:`~synthct.network.architectures.ResidualUNetUpsample` with 2 residual blocks per encoder and per decoder
  stage (57.1 M parameters with transposed convs, 61.9 M with upsample+conv at the SynthRAD topology).

Both write the same preprocessed data (identifier ``synthctPlans_3d_fullres``: no crop, same normalisation), so one
``synthct preprocess`` serves both. The ``synthct`` block of the plans carries task, regions, the input normalisation
and the target normalisation (mean/std of the clipped CT inside the body, from the fingerprint); ``synthct export``
copies it into the model's ``synthct.json``.

GPU-memory references: nnU-Net sizes the patch so that the estimate of ``compute_conv_feature_map_size`` stays below
``reference · target_GB / 8``. That estimate ignores the interpolated map of the upsample+conv decoder, which costs
~15 % more memory (H200, 48×192×192: 5.5 vs 4.8 GiB, ``method.md`` §9.11), so the plain reference is scaled by 4.8/5.5;
the 2+2-block ResU-Net estimate is 2.19× the plain one at the same patch (measured at 48×192×192, 64×160×160 and
32×256×256), so its reference is scaled by 2.19 as well: both planners give the same patch at the same GPU target, as
the fork tuned its ResU-Net planner to do.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props
from nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners import (
    ResEncUNetPlanner,
)
from nnunetv2.paths import nnUNet_preprocessed
from nnunetv2.preprocessing.resampling.default_resampling import compute_new_shape
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from synthct import __version__
from synthct.contracts.cbct_normalization import CBCT_NORMALIZATIONS
from synthct.contracts.normalization import InputNormalization, TargetNormalization
from synthct.network.architectures import PlainConvUNetUpsample, ResidualUNetUpsample

LOG = logging.getLogger(__name__)

DATA_IDENTIFIER = "synthctPlans_3d_fullres"
CONFIGURATION = "3d_fullres"
PREPROCESSOR_NAME = "SynthCTPreprocessor"
_UPSAMPLE_MEMORY = 4.8 / 5.5
_RESUNET_ESTIMATE_RATIO = 2.19
STOCK_REFERENCE_3D = 560_000_000


def synthct_block(dataset_json: dict[str, Any], fingerprint: dict[str, Any], description: str,
                  cbct_normalization: str = "dataset") -> dict[str, Any]:
    """The plans' ``synthct`` block from the dataset.json written by ``synthct convert`` and the stock fingerprint.

    Target: z = (clip(HU, -1024, 3071) − μ) / σ with μ, σ over body voxels (fingerprint channel of the CT). Input:
    MR ``zscore_mask`` (per case, inside the body); CBCT ``clip_zscore`` with the fingerprint's body percentiles
    [p0.5, p99.5], mean and std (as stock nnU-Net's CTNormalization); with ``cbct_normalization="per-case"`` the
    same clip, then a per-case robust z-score (``robust_zscore_mask``; the dataset mean/std kept as its reference).
    """
    if cbct_normalization not in CBCT_NORMALIZATIONS:
        raise ValueError(f"cbct_normalization must be one of {sorted(CBCT_NORMALIZATIONS)}, got "
                         f"{cbct_normalization!r}")
    block = dataset_json.get("synthct")
    if not isinstance(block, dict):
        raise ValueError("dataset.json has no 'synthct' block: convert the data with `synthct convert`")
    props = fingerprint["foreground_intensity_properties_per_channel"]
    inputs, targets = list(block["input_channels"]), list(block["target_channels"])
    if len(targets) != 1:
        raise ValueError(f"exactly one target channel is supported, got {targets}")
    target_stats = props[str(targets[0])]
    low, high = (float(v) for v in block.get("hu_clip", (-1024.0, 3071.0)))
    target = TargetNormalization(mean=float(target_stats["mean"]), std=float(target_stats["std"]), clip=(low, high))
    if block["task"] == "mri":
        norm = InputNormalization("zscore_mask")
    else:
        stats = props[str(inputs[0])]
        norm = InputNormalization(CBCT_NORMALIZATIONS[cbct_normalization],
                                  (float(stats["percentile_00_5"]), float(stats["percentile_99_5"])),
                                  float(stats["mean"]), float(stats["std"]))
    return {
        "task": block["task"],
        "regions": list(block["regions"]),
        "description": description,
        "input_channels": len(inputs),
        "target_channel": int(targets[0]),
        "input_normalization": norm.to_json(),
        "target_normalization": target.to_json(),
        "synthct_version": __version__,
    }


def input_skip_init(block: dict[str, Any]) -> list[float]:
    """[a0, b0] of the affine input skip: the normalised input mapped as if its HU were CT HU.

    With x = (clip(I) − μ_in) / σ_in and z = (HU − μ_ct) / σ_ct, I = HU gives
    z = (σ_in / σ_ct)·x + (μ_in − μ_ct) / σ_ct. A per-case ``robust_zscore_mask`` input uses the dataset's μ_in, σ_in
    as the reference (the case's own median and scale are not known at planning time).

    Raises:
        ValueError: the input is not ``clip_zscore`` (an MR z-score carries no HU to map).
    """
    norm, target = block["input_normalization"], block["target_normalization"]
    if norm["scheme"] not in CBCT_NORMALIZATIONS.values() or "std" not in norm:
        raise ValueError(f"the input skip needs a HU-calibrated input (clip_zscore, CBCT); this dataset's input "
                         f"normalisation is {norm['scheme']!r}")
    return [float(norm["std"]) / float(target["std"]), (float(norm["mean"]) - float(target["mean"]))
            / float(target["std"])]


def _encoder_key(arch_kwargs: dict[str, Any]) -> str:
    return "n_blocks_per_stage" if "n_blocks_per_stage" in arch_kwargs else "n_conv_per_stage"


class _SynthCTPlannerMixin:
    """3d_fullres-only planning with patch/batch/feature overrides and the ``synthct`` block.

    Mixed into nnU-Net's (untyped) experiment planners: the annotations below declare, for the type checker only, the
    host's attributes and methods this mixin uses (annotations without values add nothing at run time).
    """

    ARCH_LABEL: str
    plans_identifier: str
    dataset_name: str
    dataset_json: dict[str, Any]
    dataset_fingerprint: dict[str, Any]
    raw_dataset_folder: str
    plans: dict[str, Any]
    UNet_featuremap_min_edge_length: int
    UNet_blocks_per_stage_encoder: tuple[int, ...]
    UNet_blocks_per_stage_decoder: tuple[int, ...]
    UNet_reference_val_3d: float
    UNet_vram_target_GB: float
    UNet_reference_val_corresp_GB: float
    UNet_min_batch_size: int
    UNet_reference_val_corresp_bs_3d: int
    determine_transpose: Callable[..., Any]
    determine_fullres_target_spacing: Callable[..., Any]
    get_plans_for_configuration: Callable[..., Any]
    determine_reader_writer: Callable[..., Any]
    save_plans: Callable[..., Any]

    def _init_overrides(self, patch_size: Sequence[int] | None, batch_size: int | None, base_features: int,
                        max_features: int, input_skip: bool = False) -> None:
        if patch_size is not None and (len(patch_size) != 3 or min(patch_size) <= 0):
            raise ValueError(f"patch_size must be 3 positive ints (Z, Y, X), got {patch_size}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 1 <= base_features <= max_features:
            raise ValueError(f"need 1 <= base_features <= max_features, got {base_features}, {max_features}")
        self.fixed_patch_size = None if patch_size is None else [int(v) for v in patch_size]
        self.fixed_batch_size = batch_size
        self.UNet_base_num_features = base_features
        self.UNet_max_features_3d = max_features
        self.input_skip = input_skip
        self.cbct_normalization = "dataset"

    def generate_data_identifier(self, configuration_name: str) -> str:
        if configuration_name == CONFIGURATION:
            return DATA_IDENTIFIER
        return f"{self.plans_identifier}_{configuration_name}"

    @staticmethod
    def static_estimate_VRAM_usage(patch_size: Sequence[int], input_channels: int, output_channels: int,
                                   arch_class_name: str, arch_kwargs: dict, arch_kwargs_req_import: Sequence[str]
                                   ) -> int:
        """Stock estimate (sum of conv feature-map sizes) without stock's ``torch.set_num_threads(n_proc_DA)``,
        which fails when ``nnUNet_n_proc_DA=0``."""
        network = get_network_from_plans(arch_class_name, arch_kwargs, arch_kwargs_req_import, input_channels,
                                         output_channels, allow_init=False)
        return int(network.compute_conv_feature_map_size(patch_size))

    def _features(self, n_stages: int) -> list[int]:
        return [min(self.UNet_max_features_3d, self.UNet_base_num_features * 2**i) for i in range(n_stages)]

    def _apply_overrides(self, config: dict[str, Any], spacing: Sequence[float]) -> dict[str, Any]:
        """Re-derive the topology for a fixed patch size and set a fixed batch size."""
        arch = config["architecture"]["arch_kwargs"]
        if self.fixed_patch_size is not None:
            _, strides, kernels, patch, _ = get_pool_and_conv_props(
                list(spacing), self.fixed_patch_size, self.UNet_featuremap_min_edge_length, 999999)
            patch = [int(v) for v in patch]
            if patch != self.fixed_patch_size:
                LOG.warning("patch size %s adjusted to %s (divisibility by the pooling)", self.fixed_patch_size, patch)
            n = len(strides)
            arch.update({"n_stages": n, "kernel_sizes": kernels, "strides": strides,
                         "features_per_stage": self._features(n),
                         _encoder_key(arch): list(self.UNet_blocks_per_stage_encoder[:n]),
                         "n_conv_per_stage_decoder": list(self.UNet_blocks_per_stage_decoder[:n - 1])})
            config["patch_size"] = patch
            if self.fixed_batch_size is None:
                config["batch_size"] = self._batch_size_for(config)
        if self.fixed_batch_size is not None:
            config["batch_size"] = self.fixed_batch_size
        return config

    def _batch_size_for(self, config: dict[str, Any]) -> int:
        arch = config["architecture"]
        estimate = self.static_estimate_VRAM_usage(
            config["patch_size"], len(self.dataset_json["channel_names"]), len(self.dataset_json["labels"]),
            arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"])
        reference = self.UNet_reference_val_3d * self.UNet_vram_target_GB / self.UNet_reference_val_corresp_GB
        return max(self.UNet_min_batch_size, round(reference / estimate * self.UNet_reference_val_corresp_bs_3d))

    def plan_experiment(self) -> dict[str, Any]:
        """Plan 3d_fullres only, add the ``synthct`` block, save the plans and copy dataset.json; returns the plans."""
        transpose_forward, transpose_backward = self.determine_transpose()
        spacing = self.determine_fullres_target_spacing()
        spacing_t = spacing[transpose_forward]
        fingerprint = self.dataset_fingerprint
        shapes = [compute_new_shape(s, sp, spacing) for sp, s in
                  zip(fingerprint["spacings"], fingerprint["shapes_after_crop"], strict=True)]
        median_t = np.median(shapes, 0)[transpose_forward]
        n_voxels = float(np.prod(median_t, dtype=np.float64) * self.dataset_json["numTraining"])
        config = self.get_plans_for_configuration(spacing_t, median_t, self.generate_data_identifier(CONFIGURATION),
                                                  n_voxels, {})
        config = self._apply_overrides(config, spacing_t)
        block = synthct_block(self.dataset_json, fingerprint, self._description(), self.cbct_normalization)
        if self.input_skip:
            config["architecture"]["arch_kwargs"]["input_skip"] = input_skip_init(block)
        n_channels = len(self.dataset_json["channel_names"])
        config.update({
            "batch_dice": False,
            "normalization_schemes": [f"synthct:{block['input_normalization']['scheme']}"] * block["input_channels"]
            + ["synthct:target_hu"] * (n_channels - block["input_channels"]),
            "use_mask_for_norm": [False] * n_channels,
        })
        median_spacing = np.median(fingerprint["spacings"], 0)[transpose_forward]
        median_shape = np.median(fingerprint["shapes_after_crop"], 0)[transpose_forward]
        plans = {
            "dataset_name": self.dataset_name,
            "plans_name": self.plans_identifier,
            "original_median_spacing_after_transp": [float(v) for v in median_spacing],
            "original_median_shape_after_transp": [int(round(v)) for v in median_shape],
            "image_reader_writer": self.determine_reader_writer().__name__,
            "transpose_forward": [int(v) for v in transpose_forward],
            "transpose_backward": [int(v) for v in transpose_backward],
            "configurations": {CONFIGURATION: config},
            "experiment_planner_used": type(self).__name__,
            "label_manager": "LabelManager",
            "foreground_intensity_properties_per_channel": fingerprint["foreground_intensity_properties_per_channel"],
            "synthct": block,
        }
        shutil.copy(Path(self.raw_dataset_folder) / "dataset.json",
                    Path(nnUNet_preprocessed) / self.dataset_name / "dataset.json")
        self.plans = plans
        self.save_plans(plans)
        LOG.info("%s: patch %s, batch %d, %d stages, features %s", self.plans_identifier, config["patch_size"],
                 config["batch_size"], config["architecture"]["arch_kwargs"]["n_stages"],
                 list(config["architecture"]["arch_kwargs"]["features_per_stage"]))
        return plans

    def _description(self) -> str:
        skip = " + affine input skip" if self.input_skip else ""
        return f"{self.ARCH_LABEL}{skip}, L1 stage, trained on {self.dataset_name}"


class SynthCTUNetPlanner(_SynthCTPlannerMixin, ExperimentPlanner):
    """The paper's plain U-Net (PlainConvUNetUpsample); plans ``synthctUNetPlans``."""

    ARCH_LABEL = "plain U-Net (upsample+conv decoder)"

    def __init__(self, dataset_name_or_id: str | int, gpu_memory_target_in_gb: float = 8,
                 preprocessor_name: str = PREPROCESSOR_NAME, plans_name: str = "synthctUNetPlans",
                 overwrite_target_spacing: Sequence[float] | None = None, suppress_transpose: bool = False, *,
                 patch_size: Sequence[int] | None = None, batch_size: int | None = None, base_features: int = 32,
                 max_features: int = 320, input_skip: bool = False) -> None:
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name, plans_name,
                         overwrite_target_spacing, suppress_transpose)
        self.UNet_class = PlainConvUNetUpsample
        self.UNet_reference_val_3d = STOCK_REFERENCE_3D * _UPSAMPLE_MEMORY
        self._init_overrides(patch_size, batch_size, base_features, max_features, input_skip)


class SynthCTResUNetPlanner(_SynthCTPlannerMixin, ResEncUNetPlanner):
    """The paper's nnResU-Net (ResidualUNetUpsample, 2 blocks per encoder and decoder stage); plans
    ``synthctResUNetPlans``."""

    ARCH_LABEL = "nnResU-Net (2+2 residual blocks, upsample+conv decoder)"

    def __init__(self, dataset_name_or_id: str | int, gpu_memory_target_in_gb: float = 8,
                 preprocessor_name: str = PREPROCESSOR_NAME, plans_name: str = "synthctResUNetPlans",
                 overwrite_target_spacing: Sequence[float] | None = None, suppress_transpose: bool = False, *,
                 patch_size: Sequence[int] | None = None, batch_size: int | None = None, base_features: int = 32,
                 max_features: int = 320, input_skip: bool = False) -> None:
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name, plans_name,
                         overwrite_target_spacing, suppress_transpose)
        self.UNet_class = ResidualUNetUpsample
        self.UNet_reference_val_3d = STOCK_REFERENCE_3D * _RESUNET_ESTIMATE_RATIO * _UPSAMPLE_MEMORY
        self.UNet_blocks_per_stage_encoder = (2,) * 14
        self.UNet_blocks_per_stage_decoder = (2,) * 13
        self._init_overrides(patch_size, batch_size, base_features, max_features, input_skip)


PLANNERS: dict[str, type[ExperimentPlanner]] = {"unet": SynthCTUNetPlanner, "resunet": SynthCTResUNetPlanner}


#: Stock nnU-Net samples 1e8 body voxels in total for the intensity statistics (spread over the cases).
FINGERPRINT_SAMPLES = 100_000_000


def extract_fingerprint(dataset: str | int, num_processes: int = 4, overwrite: bool = False,
                        intensity_samples: int = FINGERPRINT_SAMPLES) -> dict[str, Any]:
    """Stock nnU-Net fingerprint (``nnUNetv2_extract_fingerprint``), saved to the preprocessed folder.

    ``intensity_samples`` is the total number of body voxels sampled for the intensity statistics (stock: 1e8; a
    few cases of a smoke test need far fewer).
    """
    from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor

    if intensity_samples < 1:
        raise ValueError(f"intensity_samples must be positive, got {intensity_samples}")
    extractor = DatasetFingerprintExtractor(dataset, max(1, num_processes), verbose=False)
    extractor.show_progress_bar = False
    extractor.num_foreground_voxels_for_intensitystats = intensity_samples
    return extractor.run(overwrite_existing=overwrite)


def plan_dataset(dataset: str | int, archs: Sequence[str] = ("unet", "resunet"), *, gpu_memory_gb: float = 8,
                 num_processes: int = 4, patch_size: Sequence[int] | None = None, batch_size: int | None = None,
                 base_features: int = 32, max_features: int = 320, overwrite_fingerprint: bool = False,
                 intensity_samples: int = FINGERPRINT_SAMPLES, input_skip: bool = False,
                 cbct_normalization: str = "dataset") -> dict[str, Path]:
    """Fingerprint (if missing or ``overwrite_fingerprint``) and plan ``dataset`` for each architecture.

    ``input_skip`` adds the affine input skip of :class:`~synthct.network.architectures.ResidualUNetUpsample`
    (CBCT only; initialised by :func:`input_skip_init`). ``cbct_normalization`` ("dataset", the paper's, or
    "per-case") picks the CBCT input normalisation (ignored for MR).

    Returns:
        Plans name → plans file path.
    """
    unknown = [a for a in archs if a not in PLANNERS]
    if unknown or not archs:
        raise ValueError(f"architectures must be a non-empty subset of {sorted(PLANNERS)}, got {list(archs)}")
    if gpu_memory_gb <= 0:
        raise ValueError(f"gpu_memory_gb must be positive, got {gpu_memory_gb}")
    if cbct_normalization not in CBCT_NORMALIZATIONS:
        raise ValueError(f"cbct_normalization must be one of {sorted(CBCT_NORMALIZATIONS)}, got "
                         f"{cbct_normalization!r}")
    from synthct.preprocessing.datasets import dataset_name

    dataset_name(dataset)  # a wrong id: one line listing the datasets that exist, before nnU-Net's own text
    if input_skip:
        _check_input_skip_task(dataset)  # cheap, before the fingerprint
    extract_fingerprint(dataset, num_processes, overwrite_fingerprint, intensity_samples)
    written = {}
    for arch in archs:
        planner = PLANNERS[arch](dataset, gpu_memory_gb, patch_size=patch_size, batch_size=batch_size,
                                 base_features=base_features, max_features=max_features, input_skip=input_skip)
        planner.cbct_normalization = cbct_normalization
        plans = planner.plan_experiment()
        path = Path(nnUNet_preprocessed) / planner.dataset_name / f"{planner.plans_identifier}.json"
        written[plans["plans_name"]] = path
    return written


def _check_input_skip_task(dataset: str | int) -> None:
    """Refuse ``--input-skip`` for an MR dataset from its raw dataset.json (no fingerprint needed)."""
    from nnunetv2.paths import nnUNet_raw

    from synthct.preprocessing.datasets import dataset_name

    raw_json = Path(str(nnUNet_raw)) / dataset_name(dataset) / "dataset.json"
    if raw_json.is_file():
        task = json.loads(raw_json.read_text()).get("synthct", {}).get("task")
        if task == "mri":
            raise ValueError("the input skip needs a HU-calibrated input (clip_zscore, CBCT); this dataset is Task 1 "
                             "(MR, input normalisation 'zscore_mask'): plan it without --input-skip")
