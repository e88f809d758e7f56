"""``synthct preprocess``: the plugin preprocessor, used identically for training data and (in-process) at inference.

Per case, :meth:`SynthCTPreprocessor.run_case_npy` does: transpose → **no crop** (the bounding box is the whole image,
so a missing target channel cannot change the grid) → normalise the input channels with
:class:`~synthct.contracts.normalization.InputNormalization` from the plans' ``synthct`` block (MR: z-score inside
the body mask; CBCT: clip + dataset z-score), keep the target channel in HU → resample (inputs with the plans' data
resampling, the target with order 1 to avoid spline overshoot at air/bone edges, the mask as a label) → foreground
locations of the body → seg int8/int16. The input normalisation is exactly the call the inference predictor makes
(``InputNormalization.apply(image, mask)``), so training and inference inputs are identical by construction.

Preprocessed output (nnU-Net blosc2 format, ``<preprocessed>/<dataset>/synthctPlans_3d_fullres/``):
``<id>.b2nd`` float32 (C, Z, Y, X) with C = inputs + target (HU), ``<id>_seg.b2nd`` int16 (1, Z, Y, X) body mask,
``<id>.pkl`` properties (``sitk_stuff``, spacing, shapes, ``class_locations``).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from nnunetv2.paths import nnUNet_preprocessed, nnUNet_raw
from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
from nnunetv2.preprocessing.resampling.default_resampling import compute_new_shape, resample_data_or_seg_to_shape
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets
from tqdm import tqdm

from synthct.contracts.normalization import InputNormalization
from synthct.preprocessing.datasets import dataset_name

LOG = logging.getLogger(__name__)


def input_normalization_of(plans: dict[str, Any]) -> tuple[InputNormalization, int]:
    """(input normalisation, number of input channels) from the plans' ``synthct`` block."""
    block = plans.get("synthct")
    if not isinstance(block, dict):
        raise ValueError(f"plans {plans.get('plans_name')!r} have no 'synthct' block: plan with `synthct plan`")
    return InputNormalization.from_json(block["input_normalization"]), int(block.get("input_channels", 1))


def normalize_channels(data: np.ndarray, mask: np.ndarray | None, norm: InputNormalization,
                       n_inputs: int) -> np.ndarray:
    """Normalise the first ``n_inputs`` channels of ``data`` (C, Z, Y, X) in place; the rest (the HU target) stay.

    ``mask`` (Z, Y, X) bool is the body mask (None: whole-image statistics). Returns ``data`` (float32).
    """
    if data.shape[0] < n_inputs:
        raise ValueError(f"expected at least {n_inputs} input channel(s), got data of shape {data.shape}")
    for c in range(n_inputs):
        data[c] = norm.apply(data[c], mask)
    return data


class SynthCTPreprocessor(DefaultPreprocessor):
    """Stock ``DefaultPreprocessor`` with the plugin's crop (none), normalisation and target resampling."""

    def run_case_npy(self, data: np.ndarray, seg: np.ndarray | None, properties: dict,
                     plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                     dataset_json: dict | str) -> tuple[np.ndarray, np.ndarray | None, dict]:
        """Preprocess one case. ``data`` (C, Z, Y, X) raw (inputs, then optionally the HU target), ``seg``
        (1, Z, Y, X) body mask or None. Returns (data float32, seg int8/int16 or None, properties)."""
        norm, n_inputs = input_normalization_of(plans_manager.plans)
        data = data.astype(np.float32)
        if seg is not None:
            if data.shape[1:] != seg.shape[1:]:
                raise ValueError(f"image shape {data.shape[1:]} differs from mask shape {seg.shape[1:]}")
            seg = np.copy(seg)
        axes = [0, *[i + 1 for i in plans_manager.transpose_forward]]
        data = data.transpose(axes)
        seg = None if seg is None else seg.transpose(axes)
        spacing = [properties["spacing"][i] for i in plans_manager.transpose_forward]
        shape = tuple(int(s) for s in data.shape[1:])
        properties["shape_before_cropping"] = shape
        properties["bbox_used_for_cropping"] = [[0, s] for s in shape]
        properties["shape_after_cropping_and_before_resampling"] = shape
        target_spacing = list(configuration_manager.spacing)
        new_shape = compute_new_shape(shape, spacing, target_spacing)
        data = normalize_channels(np.ascontiguousarray(data), None if seg is None else seg[0] > 0, norm, n_inputs)
        data = self._resample(data, n_inputs, new_shape, spacing, target_spacing, configuration_manager)
        if seg is None:
            return data, None, properties
        seg = configuration_manager.resampling_fn_seg(seg, new_shape, spacing, target_spacing)
        label_manager = plans_manager.get_label_manager(dataset_json)
        properties["class_locations"] = self._sample_foreground_locations(
            seg, label_manager.foreground_labels, verbose=False)
        seg = seg.astype(np.int16 if np.max(seg) > 127 else np.int8)
        return data, seg, properties

    @staticmethod
    def _resample(data: np.ndarray, n_inputs: int, new_shape: Any, spacing: list[float],
                  target_spacing: list[float], configuration_manager: ConfigurationManager) -> np.ndarray:
        if tuple(new_shape) == data.shape[1:]:
            return data
        inputs = configuration_manager.resampling_fn_data(data[:n_inputs], new_shape, spacing, target_spacing)
        if data.shape[0] == n_inputs:
            return inputs.astype(np.float32)
        target = resample_data_or_seg_to_shape(data[n_inputs:], new_shape, spacing, target_spacing, is_seg=False,
                                               order=1, order_z=0, force_separate_z=None)
        return np.concatenate([inputs, target]).astype(np.float32)


def preprocess_dataset(dataset: str | int, plans_name: str, configuration: str = "3d_fullres",
                       num_processes: int = 4) -> Path:
    """Preprocess every training case of ``dataset`` with ``plans_name``; returns the output folder.

    ``num_processes <= 1`` runs in this process (no spawn start-up); otherwise nnU-Net's own spawn pool
    (``DefaultPreprocessor.run``) runs the cases, which needs synthct installed (it is re-imported in the workers).
    """
    from synthct.preprocessing.plans import load_plans

    name = dataset_name(dataset)
    base = Path(nnUNet_preprocessed) / name
    plans = load_plans(base, plans_name)
    plans_manager = PlansManager(plans)
    config = plans_manager.get_configuration(configuration)
    out = base / config.data_identifier
    preprocessor = SynthCTPreprocessor(verbose=False)
    preprocessor.show_progress_bar = True  # nnU-Net's pool shows "Preprocessing cases" with it
    if num_processes > 1:
        preprocessor.run(name, configuration, plans_name, num_processes)
        return out
    dataset_json = json.loads((base / "dataset.json").read_text())
    if out.is_dir():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    cases = get_filenames_of_train_images_and_targets(str(Path(nnUNet_raw) / name), dataset_json)
    for key, files in tqdm(cases.items(), total=len(cases), desc="Preprocessing cases", unit="case"):
        preprocessor.run_case_save(str(out / key), files["images"], files["label"], plans_manager, config,
                                   dataset_json)
    LOG.info("preprocessed %d cases of %s into %s", len(cases), name, out)
    return out
