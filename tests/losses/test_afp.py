"""AFP loss and the frozen feature extractor: hooks, zero for identical inputs, bone sensitivity, gradients,
strict loading, masking, spacing/padding."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from testutils import SAMPLES
from torch import nn

from synthct.contracts.normalization import TargetNormalization
from synthct.losses import AFPLoss, load_feature_extractor
from synthct.network.scaffold import random_segmentation_results

TN = TargetNormalization(mean=-300.0, std=500.0)


@pytest.fixture(scope="module")
def extractor_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_segmentation_results(tmp_path_factory.mktemp("extractor") / "Dataset901", spacing=(2.5, 1.0, 1.0))


@pytest.fixture(scope="module")
def ct_patch() -> torch.Tensor:
    """A real CT patch around the porcine long bone, in the synthesis units of TN: (1, 1, 16, 64, 64)."""
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(SAMPLES / "porcine" / "ct.mha"))).astype(np.float32)
    z, y, x = np.argwhere(ct > 300).mean(0).astype(int)
    z0 = int(np.clip(z - 8, 0, ct.shape[0] - 16))
    patch = ct[z0:z0 + 16, y - 32:y + 32, x - 32:x + 32]
    return torch.from_numpy(TN.to_z(patch))[None, None]


def test_hooks_give_nine_maps_with_expected_shapes(extractor_dir: Path) -> None:
    extractor = load_feature_extractor(extractor_dir)
    assert extractor.stride_multiple == (8, 32, 32)
    features = extractor(torch.zeros(2, 1, 8, 32, 64))
    shapes = [tuple(f.shape) for f in features]
    assert shapes == [(2, 4, 8, 32, 64), (2, 8, 8, 16, 32), (2, 16, 4, 8, 16), (2, 16, 2, 4, 8),  # encoder 0-3
                      (2, 16, 1, 2, 4), (2, 16, 2, 4, 8), (2, 16, 4, 8, 16), (2, 8, 8, 16, 32),  # decoder 0-3
                      (2, 4, 8, 32, 64)]  # decoder 4
    extractor.train()
    assert not extractor.training and not extractor.network.training
    assert not any(p.requires_grad for p in extractor.parameters())


def test_afp_zero_for_identical_and_grows_with_bone_perturbation(extractor_dir: Path, ct_patch: torch.Tensor) -> None:
    afp = AFPLoss(load_feature_extractor(extractor_dir), TN, data_spacing=(2.5, 1.0, 1.0))
    assert afp(ct_patch, ct_patch.clone()).item() == 0.0
    hu = ct_patch * TN.std + TN.mean
    bone = (hu > 250).float()
    assert bone.sum() > 100
    losses = [afp(ct_patch, ct_patch + bone * delta / TN.std).item() for delta in (50.0, 200.0, 600.0)]
    assert 0 < losses[0] < losses[1] < losses[2]
    # a change of the same size in soft tissue far from bone matters too, but the loss is a function of anatomy
    soft = ((hu > -100) & (hu < 100)).float()
    assert afp(ct_patch, ct_patch + soft * 200.0 / TN.std).item() > 0


def test_gradients_reach_only_the_synthesis_network(extractor_dir: Path, ct_patch: torch.Tensor) -> None:
    extractor = load_feature_extractor(extractor_dir)
    afp = AFPLoss(extractor, TN, data_spacing=(2.5, 1.0, 1.0))
    torch.manual_seed(0)
    synth = nn.Conv3d(1, 1, 3, padding=1)
    afp(synth(ct_patch), ct_patch).backward()
    assert synth.weight.grad is not None and synth.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in extractor.parameters())


def test_masked_afp_ignores_outside_body(extractor_dir: Path, ct_patch: torch.Tensor) -> None:
    body = torch.zeros_like(ct_patch, dtype=torch.bool)
    body[..., 16:48, 16:48] = True
    pred = torch.where(body, ct_patch, ct_patch + 1.0)  # differs only outside the body
    masked = AFPLoss(load_feature_extractor(extractor_dir), TN, masked=True)
    plain = AFPLoss(load_feature_extractor(extractor_dir), TN)
    assert masked(pred, ct_patch, body=body).item() == 0.0
    assert plain(pred, ct_patch).item() > 0
    with pytest.raises(ValueError, match="needs the body mask"):
        masked(pred, ct_patch)


@pytest.mark.parametrize("feature_norm", ["instance", "channel"])
def test_odd_sizes_resampling_and_feature_norms(extractor_dir: Path, feature_norm: str) -> None:
    afp = AFPLoss(load_feature_extractor(extractor_dir), TN, data_spacing=(3.0, 1.5, 1.5), feature_norm=feature_norm)
    pred, target = torch.randn(1, 1, 10, 40, 36), torch.randn(1, 1, 10, 40, 36)
    assert torch.isfinite(afp(pred, target)) and afp(target, target).item() == 0.0


def test_strict_loading_fails_loudly(extractor_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(extractor_dir, broken)
    ckpt = torch.load(broken / "fold_0" / "checkpoint_final.pth", weights_only=True)
    ckpt["network_weights"].pop(next(iter(ckpt["network_weights"])))
    torch.save(ckpt, broken / "fold_0" / "checkpoint_final.pth")
    with pytest.raises(ValueError, match="do not match its plans"):
        load_feature_extractor(broken)
    with pytest.raises(FileNotFoundError, match="checkpoint_best.pth"):
        load_feature_extractor(extractor_dir, checkpoint="best")
    with pytest.raises(ValueError, match="feature tap"):
        load_feature_extractor(extractor_dir, taps=[("encoder", 9)])


def test_bundled_extractor_round_trip_in_fp16(extractor_dir: Path, tmp_path: Path) -> None:
    from synthct.losses.feature_extractor import export_extractor

    out = export_extractor(extractor_dir, tmp_path / "bundle", fold=0, provenance="demo extractor\n")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "PROVENANCE.md", "dataset.json", "fold_0/checkpoint_final.safetensors", "plans.json"]
    assert not list(tmp_path.glob(".bundle.*"))  # the staging folder is gone
    x = torch.randn(2, 1, 8, 32, 64)
    stock, bundled = load_feature_extractor(extractor_dir), load_feature_extractor(out)
    assert all(p.dtype == torch.float32 for p in bundled.parameters())
    for a, b in zip(stock(x), bundled(x), strict=True):
        assert torch.allclose(a, b, rtol=0, atol=2e-2 * float(a.abs().max()))
    with pytest.raises(FileNotFoundError, match="checkpoint_best.pth"):
        export_extractor(extractor_dir, tmp_path / "never", fold=0, checkpoint="best")
    assert not (tmp_path / "never").exists()


def test_random_extractor_is_seeded_needs_no_weights_and_differs(extractor_dir: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("plans.json", "dataset.json"):
        shutil.copyfile(extractor_dir / name, bare / name)
    torch.manual_seed(1)
    first = load_feature_extractor(bare, init="random")
    torch.manual_seed(2)  # whatever the caller's generator holds
    second = load_feature_extractor(extractor_dir, init="random")
    trained = load_feature_extractor(extractor_dir)
    a, b, t = (dict(e.network.named_parameters()) for e in (first, second, trained))
    conv = next(k for k in a if k.endswith("conv.weight"))
    assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a[conv], t[conv])
    assert (first.ct_clip, first.ct_mean, first.ct_std) == (trained.ct_clip, trained.ct_mean, trained.ct_std)
    with pytest.raises(ValueError, match="extractor init must be one of"):
        load_feature_extractor(extractor_dir, init="imagenet")
    with pytest.raises(FileNotFoundError, match="checkpoint_final.pth"):
        load_feature_extractor(bare)
