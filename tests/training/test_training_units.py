"""Pieces of the training plugin: config, masked L1, augmentation presets, preprocessing identity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from batchgeneratorsv2.transforms.utils.random import RandomTransform

from synthct.training.config import TrainConfig
from synthct.training.dataloading import (
    _intensity_transforms,
    initial_patch_size,
    is_anisotropic,
    training_transforms,
)
from synthct.training.loss import MaskedL1Loss, l1_weights, masked_l1


def test_train_config_defaults_validation_and_round_trip() -> None:
    config = TrainConfig()
    assert (config.epochs, config.iterations_per_epoch, config.initial_lr, config.augmentation) == (
        1000, 250, 1e-2, "paper")
    assert TrainConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
    assert config.updated(epochs=1500, initial_lr=None).epochs == 1500
    with pytest.raises(ValueError, match="epochs must be a positive int, got 0"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="augmentation must be one of"):
        TrainConfig(augmentation="heavy")
    with pytest.raises(ValueError, match="optimizer must be one of .* got 'adam'"):
        TrainConfig(optimizer="adam")
    assert config.optimizer == "sgd" and TrainConfig.from_json({"epochs": 3}).optimizer == "sgd"  # older configs
    with pytest.raises(ValueError, match="mirror_lr needs augmentation 'mild'"):
        TrainConfig(mirror_lr=True)
    with pytest.raises(ValueError, match="unknown train_config keys"):
        TrainConfig.from_json({"epochz": 3})


def test_masked_l1_matches_numpy_and_ignores_invalid_voxels() -> None:
    gen = torch.Generator().manual_seed(0)
    pred = torch.randn(2, 1, 4, 5, 6, generator=gen, requires_grad=True)
    target = torch.randn(2, 1, 4, 5, 6, generator=gen)
    seg = torch.randint(-1, 2, (2, 1, 4, 5, 6), generator=gen).to(torch.int16)
    p, t, s = pred.detach().numpy(), target.numpy(), seg.numpy()
    expected = np.abs(p - t)[s >= 0].mean()
    assert MaskedL1Loss()(pred, target, seg).item() == pytest.approx(expected, rel=1e-6)
    w = np.where(s == 1, 1.0, np.where(s == 0, 0.25, 0.0))
    weighted = (np.abs(p - t) * w).sum() / w.sum()
    assert MaskedL1Loss(0.25)(pred, target, seg).item() == pytest.approx(weighted, rel=1e-6)
    # fp16 predictions (autocast) are scored in fp32
    assert masked_l1(pred.half(), target, l1_weights(seg)).dtype == torch.float32
    nothing = masked_l1(pred, target, torch.zeros_like(target))
    nothing.backward()
    assert nothing.item() == 0.0 and pred.grad is not None
    with pytest.raises(ValueError, match="shapes differ"):
        masked_l1(pred, target[:, :, :2], l1_weights(seg))


def _sample(shape: tuple[int, ...] = (16, 32, 32)) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    return {"image": torch.randn(1, *shape, generator=gen),
            "regression_target": torch.rand(1, *shape, generator=gen) * 4000 - 1024,
            "segmentation": torch.ones(1, *shape, dtype=torch.int16)}


def test_intensity_augmentation_leaves_target_and_mask_bit_identical() -> None:
    transforms = _intensity_transforms(None)
    for t in transforms:
        assert isinstance(t, RandomTransform)
        t.apply_probability = 1.0  # force every intensity transform
    sample = _sample()
    target, seg, image = (sample[k].clone() for k in ("regression_target", "segmentation", "image"))
    for t in transforms:
        sample = t(**sample)
    assert torch.equal(sample["regression_target"], target)
    assert torch.equal(sample["segmentation"], seg)
    assert not torch.equal(sample["image"], image)


def test_mild_preset_moves_target_with_image_and_marks_padding() -> None:
    patch = (16, 32, 32)
    pipeline = training_transforms(patch, "mild")
    spatial = next(t for t in pipeline.transforms if isinstance(t, SpatialTransform))
    assert spatial.rotation == pytest.approx((-np.pi / 12, np.pi / 12))  # ±15°, never ±180°
    spatial.p_rotation, spatial.p_scaling, spatial.scaling = 0.0, 1.0, (1.15, 1.15)  # zoom out: borders leave FOV
    for t in pipeline.transforms:
        if isinstance(t, RandomTransform):
            t.apply_probability = 0.0
    sample = _sample(patch)
    sample["regression_target"] = sample["image"].clone()  # identical channels must stay identical
    out = pipeline(**sample)
    assert out["regression_target"].shape == (1, *patch)
    torch.testing.assert_close(out["regression_target"], out["image"])
    assert (out["segmentation"] == -1).any() and (out["segmentation"] == 1).any()
    assert training_transforms(patch, "paper") is None


def test_initial_patch_size_per_preset() -> None:
    assert initial_patch_size((16, 32, 32), "paper") == [16, 32, 32]
    assert is_anisotropic((16, 64, 64)) and not is_anisotropic((16, 32, 32))
    aniso = initial_patch_size((16, 64, 64), "mild")
    assert aniso[0] == 16 and min(aniso[1:]) > 64  # in-plane only: z untouched
    assert min(np.array(initial_patch_size((16, 32, 32), "mild")) - (16, 32, 32)) > 0
    with pytest.raises(ValueError, match="augmentation must be"):
        training_transforms((16, 32, 32), "strong")


def test_mr_normalisation_is_identical_with_and_without_target_and_at_inference(
        planned_dataset: str, nnunet_env: dict[str, Path]) -> None:
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from synthct.contracts.normalization import InputNormalization
    from synthct.preprocessing.plans import load_plans
    from synthct.preprocessing.preprocessor import SynthCTPreprocessor

    base = nnunet_env["preprocessed"] / planned_dataset
    plans = load_plans(base, "synthctUNetPlans")
    dataset_json = json.loads((base / "dataset.json").read_text())
    manager = PlansManager(plans)
    config = manager.get_configuration("3d_fullres")
    raw = nnunet_env["raw"] / planned_dataset
    mr, ct, label = (str(raw / "imagesTr" / "1ABX003_0000.mha"), str(raw / "imagesTr" / "1ABX003_0001.mha"),
                     str(raw / "labelsTr" / "1ABX003.mha"))
    pre = SynthCTPreprocessor(verbose=False)
    both, seg, props = pre.run_case([mr, ct], label, manager, config, dataset_json)
    alone, _, props_alone = pre.run_case([mr], label, manager, config, dataset_json)
    mr_arr, ct_arr, mask_arr = (sitk.GetArrayFromImage(sitk.ReadImage(p)) for p in (mr, ct, label))
    assert both.shape == (2, *mr_arr.shape) and alone.shape == (1, *mr_arr.shape)  # no crop
    np.testing.assert_array_equal(both[0], alone[0])
    inference = InputNormalization.from_json(plans["synthct"]["input_normalization"]).apply(mr_arr, mask_arr > 0)
    np.testing.assert_array_equal(both[0], inference)  # what the inference predictor computes
    np.testing.assert_array_equal(both[1], ct_arr.astype(np.float32))  # target kept in HU
    body = mask_arr > 0
    assert abs(both[0][body].mean()) < 1e-4 and both[0][body].std() == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_array_equal(seg[0], mask_arr)
    assert props["bbox_used_for_cropping"] == props_alone["bbox_used_for_cropping"] == [[0, s] for s in mr_arr.shape]
    assert set(props["class_locations"]) == {1}


def test_plans_carry_the_synthct_block_and_paper_architectures(planned_dataset: str,
                                                               nnunet_env: dict[str, Path]) -> None:
    from synthct.network.build import build_network
    from synthct.preprocessing.plans import load_plans

    base = nnunet_env["preprocessed"] / planned_dataset
    fingerprint = json.loads((base / "dataset_fingerprint.json").read_text())
    for name, cls, blocks_key in (("synthctUNetPlans", "PlainConvUNetUpsample", "n_conv_per_stage"),
                                  ("synthctResUNetPlans", "ResidualUNetUpsample", "n_blocks_per_stage")):
        plans = load_plans(base, name)
        assert list(plans["configurations"]) == ["3d_fullres"]
        config = plans["configurations"]["3d_fullres"]
        assert config["data_identifier"] == "synthctPlans_3d_fullres"
        assert config["patch_size"] == [16, 32, 32] and config["batch_size"] == 2
        arch = config["architecture"]
        assert arch["network_class_name"] == f"synthct.network.architectures.{cls}"
        assert arch["arch_kwargs"][blocks_key] == [2, 2, 2, 2]
        assert arch["arch_kwargs"]["n_conv_per_stage_decoder"] == [2, 2, 2]
        assert type(build_network(arch, 1, 1)).__name__ == cls
        block = plans["synthct"]
        target = fingerprint["foreground_intensity_properties_per_channel"]["1"]
        assert block["target_normalization"] == {"clip": [-1024.0, 3071.0], "mean": target["mean"],
                                                 "std": target["std"]}
        assert block["input_normalization"] == {"scheme": "zscore_mask"}
        assert (block["task"], block["regions"], block["input_channels"]) == ("mri", ["AB"], 1)
    with pytest.raises(FileNotFoundError, match="planned as synthctResUNetPlans, synthctUNetPlans: pass --plans "
                                                "synthctResUNetPlans$"):
        load_plans(base, "nnUNetPlans")


def test_synthct_block_for_cbct_uses_dataset_statistics() -> None:
    from synthct.contracts.normalization import InputNormalization, TargetNormalization
    from synthct.network.planning import synthct_block

    stats = {"0": {"mean": -200.0, "std": 300.0, "percentile_00_5": -1000.0, "percentile_99_5": 1500.0},
             "1": {"mean": -150.0, "std": 400.0, "percentile_00_5": -1024.0, "percentile_99_5": 1800.0}}
    dataset = {"synthct": {"task": "cbct", "regions": ["HN"], "input_channels": [0], "target_channels": [1],
                           "hu_clip": [-1024.0, 3071.0]}}
    block = synthct_block(dataset, {"foreground_intensity_properties_per_channel": stats}, "test")
    norm = InputNormalization.from_json(block["input_normalization"])
    assert norm == InputNormalization("clip_zscore", (-1000.0, 1500.0), -200.0, 300.0)
    assert TargetNormalization.from_json(block["target_normalization"]) == TargetNormalization(-150.0, 400.0)
    np.testing.assert_allclose(norm.apply(np.array([-3000.0, -200.0, 2000.0])), [-8 / 3, 0.0, 17 / 3], rtol=1e-6)
    with pytest.raises(ValueError, match="no 'synthct' block"):
        synthct_block({}, {"foreground_intensity_properties_per_channel": stats}, "test")
