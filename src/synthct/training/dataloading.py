"""Patch sampling with a continuous CT target, and the augmentation presets.

:class:`SynthCTDataLoader` keeps nnU-Net's sampling (random patches, a share centred in the body via the mask's
``class_locations``) but splits each cropped sample into ``image`` (the input channels), ``regression_target`` (the
HU target channel) and ``segmentation`` (the body mask, -1 = padding) before the batchgeneratorsv2 transforms, so that
intensity transforms (``ImageOnlyTransform``) never touch the target while spatial transforms move all three alike.

Presets:

* ``paper``: no augmentation, no mirroring (the fork's and the paper's setting).
* ``mild``: ``SpatialTransform`` with p_rot 0.2 (±15°; in-plane only through dummy 2-D for anisotropic patches,
  never nnU-Net's ±180°), p_scale 0.2 (0.85-1.15), no elastic deformation, seg padded with -1; the stock intensity
  transforms (noise, blur, brightness, contrast, low resolution, gamma) with stock probabilities on the input only;
  optional left-right mirroring.
* ``cbct-drift``: no spatial transform; CBCT calibration drift (global HU affine, smooth shading, noise level) in HU
  on the input only, :class:`~synthct.training.augmentation_drift.CBCTDriftTransform`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from acvl_utils.cropping_and_padding.bounding_boxes import crop_and_pad_nd
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform
from batchgeneratorsv2.transforms.intensity.brightness import MultiplicativeBrightnessTransform
from batchgeneratorsv2.transforms.intensity.contrast import BGContrast, ContrastTransform
from batchgeneratorsv2.transforms.intensity.gamma import GammaTransform
from batchgeneratorsv2.transforms.intensity.gaussian_noise import GaussianNoiseTransform
from batchgeneratorsv2.transforms.noise.gaussian_blur import GaussianBlurTransform
from batchgeneratorsv2.transforms.spatial.low_resolution import SimulateLowResolutionTransform
from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.pseudo2d import Convert2DTo3DTransform, Convert3DTo2DTransform
from batchgeneratorsv2.transforms.utils.random import RandomTransform
from nnunetv2.configuration import ANISO_THRESHOLD
from nnunetv2.training.data_augmentation.compute_initial_patch_size import get_patch_size
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from threadpoolctl import threadpool_limits

from synthct.contracts.normalization import InputNormalization
from synthct.training.augmentation_drift import CBCTDriftTransform

MILD_ROTATION = (-15.0 / 180 * np.pi, 15.0 / 180 * np.pi)
MILD_SCALING = (0.85, 1.15)
LEFT_RIGHT_AXIS = 2  # (Z, Y, X) patches after transpose_forward [0, 1, 2]: X is left-right


class SynthCTDataLoader(nnUNetDataLoader):
    """nnU-Net's 3-D/2-D patch loader for (inputs + HU target) data.

    Returns batches ``{"data": (B, n_in, *P) float32 normalised input, "target": (B, 1, *P) float32 HU,
    "seg": (B, 1, *P) int16 body mask with -1 outside the image, "keys": case ids}``.
    """

    def __init__(self, *args: object, n_inputs: int = 1, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        if n_inputs < 1:
            raise ValueError(f"n_inputs must be >= 1, got {n_inputs}")
        self.n_inputs = n_inputs

    def _sample(self, key: str, force_fg: bool) -> dict[str, torch.Tensor]:
        data, seg, _, properties = self._data.load_case(key)
        if data.shape[0] <= self.n_inputs:
            raise ValueError(f"case {key}: {data.shape[0]} channel(s), expected {self.n_inputs} input(s) + a target")
        lbs, ubs = self.get_bbox(data.shape[1:], force_fg, properties["class_locations"])
        bbox = [[lo, hi] for lo, hi in zip(lbs, ubs, strict=True)]
        cropped = torch.from_numpy(crop_and_pad_nd(data, bbox, 0)).float()
        mask = torch.from_numpy(crop_and_pad_nd(seg, bbox, -1, cast_cropped_to=np.int16)).to(torch.int16)
        if self.patch_size_was_2d:
            cropped, mask = cropped[:, 0], mask[:, 0]
        sample = {"image": cropped[: self.n_inputs], "regression_target": cropped[self.n_inputs:],
                  "segmentation": mask}
        return self.transforms(**sample) if self.transforms is not None else sample

    def generate_train_batch(self) -> dict[str, object]:
        keys = self.get_indices()
        images, targets, segs = [], [], []
        with torch.no_grad(), threadpool_limits(limits=1, user_api=None):
            for j, key in enumerate(keys):
                sample = self._sample(key, self.get_do_oversample(j))
                images.append(sample["image"])
                targets.append(sample["regression_target"])
                segs.append(sample["segmentation"])
        return {"data": torch.stack(images), "target": torch.stack(targets), "seg": torch.stack(segs), "keys": keys}


def is_anisotropic(patch_size: Sequence[int]) -> bool:
    """nnU-Net's dummy-2D criterion: max(patch) / patch[0] > ANISO_THRESHOLD (3 × 1 × 1 mm SynthRAD patches are)."""
    return len(patch_size) == 3 and max(patch_size) / patch_size[0] > ANISO_THRESHOLD


def initial_patch_size(patch_size: Sequence[int], augmentation: str) -> list[int]:
    """Patch to crop before the spatial transform: large enough for a ±15° rotation and 0.85 scaling ("mild"),
    the final patch itself for "paper"."""
    if augmentation in ("paper", "cbct-drift"):
        return [int(v) for v in patch_size]
    if is_anisotropic(patch_size):
        inplane = get_patch_size(patch_size[1:], MILD_ROTATION, MILD_ROTATION, MILD_ROTATION, MILD_SCALING)
        return [int(patch_size[0]), *(int(v) for v in inplane)]
    return [int(v) for v in get_patch_size(patch_size, MILD_ROTATION, MILD_ROTATION, MILD_ROTATION, MILD_SCALING)]


def _intensity_transforms(ignore_axes: tuple[int, ...] | None) -> list[BasicTransform]:
    """nnU-Net's intensity transforms with their stock probabilities; all are ImageOnlyTransforms."""
    return [
        RandomTransform(GaussianNoiseTransform(noise_variance=(0, 0.1), p_per_channel=1, synchronize_channels=True),
                        apply_probability=0.1),
        RandomTransform(GaussianBlurTransform(blur_sigma=(0.5, 1.0), synchronize_channels=False,
                                              synchronize_axes=False, p_per_channel=0.5, benchmark=True),
                        apply_probability=0.2),
        RandomTransform(MultiplicativeBrightnessTransform(multiplier_range=BGContrast((0.75, 1.25)),
                                                         synchronize_channels=False, p_per_channel=1),
                        apply_probability=0.15),
        RandomTransform(ContrastTransform(contrast_range=BGContrast((0.75, 1.25)), preserve_range=True,
                                          synchronize_channels=False, p_per_channel=1), apply_probability=0.15),
        RandomTransform(SimulateLowResolutionTransform(scale=(0.5, 1), synchronize_channels=False,
                                                       synchronize_axes=True, ignore_axes=ignore_axes,
                                                       allowed_channels=None, p_per_channel=0.5),
                        apply_probability=0.25),
        RandomTransform(GammaTransform(gamma=BGContrast((0.7, 1.5)), p_invert_image=1, synchronize_channels=False,
                                       p_per_channel=1, p_retain_stats=1), apply_probability=0.1),
        RandomTransform(GammaTransform(gamma=BGContrast((0.7, 1.5)), p_invert_image=0, synchronize_channels=False,
                                       p_per_channel=1, p_retain_stats=1), apply_probability=0.3),
    ]


def training_transforms(patch_size: Sequence[int], augmentation: str, mirror_axes: Sequence[int] = (),
                        norm: InputNormalization | None = None, spacing: Sequence[float] | None = None,
                        n_inputs: int = 1) -> BasicTransform | None:
    """The training transforms of a preset for (Z, Y, X) ``patch_size``; None for "paper" (no augmentation).

    "cbct-drift" needs the plans' input normalisation ``norm`` and the patches' (Z, Y, X) ``spacing``."""
    if augmentation == "paper":
        return None
    if augmentation == "cbct-drift":
        if norm is None or spacing is None:
            raise ValueError("the cbct-drift augmentation needs the input normalisation and the patch spacing")
        return ComposeTransforms([CBCTDriftTransform(norm, spacing, n_inputs=n_inputs)])
    if augmentation != "mild":
        raise ValueError(f"augmentation must be 'paper', 'mild' or 'cbct-drift', got {augmentation!r}")
    dummy_2d = is_anisotropic(patch_size)
    spatial = SpatialTransform(
        list(patch_size[1:]) if dummy_2d else list(patch_size), patch_center_dist_from_border=0, random_crop=False,
        p_elastic_deform=0, p_rotation=0.2, rotation=MILD_ROTATION, p_scaling=0.2, scaling=MILD_SCALING,
        p_synchronize_scaling_across_axes=1, bg_style_seg_sampling=False, border_mode_seg="constant",
        padding_value_seg=-1)
    transforms: list[BasicTransform] = (
        [Convert3DTo2DTransform(), spatial, Convert2DTo3DTransform()] if dummy_2d else [spatial])
    transforms += _intensity_transforms((0,) if dummy_2d else None)
    if mirror_axes:
        transforms.append(MirrorTransform(allowed_axes=tuple(mirror_axes)))
    return ComposeTransforms(transforms)
