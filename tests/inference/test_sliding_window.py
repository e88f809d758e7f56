"""Stitching contract: float32 exactness, mask skipping, ensembles, TTA, batching, OOM fallback."""

from __future__ import annotations

import logging
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from synthct.inference.sliding_window import (
    SlidingWindowSettings,
    _attempts,
    select_tiles,
    sliding_window_predict,
)
from synthct.inference.tiling import plan_tiles


def affine(a: float, b: float):
    return lambda x: a * x + b


def conv_net(seed: int) -> nn.Module:
    """A small non-linear net whose output depends on the tile content (InstanceNorm): stitching is not trivial."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv3d(1, 4, 3, padding=1), nn.InstanceNorm3d(4, affine=True), nn.LeakyReLU(),
        nn.Conv3d(4, 1, 3, padding=1),
    ).eval()


def settings(**kw) -> SlidingWindowSettings:
    base = {"tile_size": (8, 16, 16), "progress": False}
    base.update(kw)
    return SlidingWindowSettings(**base)


@pytest.mark.parametrize("blend", ["mean", "gaussian"])
@pytest.mark.parametrize("step", [0.3, 0.5, 1.0])
@pytest.mark.parametrize("shape", [(20, 40, 35), (5, 9, 70)])  # the second is smaller than the tile in 2 axes
def test_affine_map_reproduced_to_float32_rounding(blend: str, step: float, shape: tuple[int, ...]) -> None:
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(1, *shape)).astype(np.float32)) * 3
    out = sliding_window_predict([affine(2.5, 4.3)], x, settings(blend=blend, step=step, tile_batch=3))
    expected = 2.5 * x + 4.3
    assert out.dtype == torch.float32 and out.shape == expected.shape
    # float32 rounding only: a few ulp of the largest value
    assert (out - expected).abs().max().item() <= 8 * torch.finfo(torch.float32).eps * expected.abs().max().item()


def test_stock_fp16_accumulation_fails_where_ours_is_exact() -> None:
    """The stock nnU-Net 2.8.1 predictor on the same constant-output net: fp16 accumulators lose ~1e-2 (z units)."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    x = torch.zeros((1, 24, 96, 96))
    const = affine(0.0, 4.3)
    stock = nnUNetPredictor(tile_step_size=0.3, use_gaussian=False, use_mirroring=False,
                            perform_everything_on_device=False, device=torch.device("cpu"), verbose=False,
                            allow_tqdm=False)
    stock.network = nn.Identity()
    stock.network.forward = const  # type: ignore[method-assign]
    stock.configuration_manager = SimpleNamespace(patch_size=[8, 32, 32])
    stock.label_manager = SimpleNamespace(num_segmentation_heads=1)
    stock.allowed_mirroring_axes = None
    stock_err = (stock.predict_sliding_window_return_logits(x).float() - 4.3).abs().max().item()
    ours = sliding_window_predict([const], x, settings(tile_size=(8, 32, 32), step=0.3))
    our_err = (ours - 4.3).abs().max().item()
    assert stock_err > 1e-3
    assert our_err <= 4 * torch.finfo(torch.float32).eps * 4.3


def test_mask_skipping_identical_inside_the_mask() -> None:
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(size=(1, 24, 64, 64)).astype(np.float32))
    mask = np.zeros((24, 64, 64), bool)
    mask[4:14, 10:30, 5:25] = True  # a body in one corner
    net = conv_net(0)
    full = sliding_window_predict([net], x, settings(tile_batch=1, skip_outside_mask=False))
    skipped = sliding_window_predict([net], x, settings(tile_batch=1, fill_value=-7.0), mask=mask)
    assert torch.equal(full[0][torch.from_numpy(mask)], skipped[0][torch.from_numpy(mask)])
    n_all = len(plan_tiles((24, 64, 64), (8, 16, 16), 0.3))
    n_kept = len(select_tiles(plan_tiles((24, 64, 64), (8, 16, 16), 0.3), mask))
    assert n_kept < n_all / 2
    assert (skipped[0][0:1, 50:, 50:] == -7.0).all()  # far corner: no tile computed there


def test_select_tiles_matches_brute_force() -> None:
    rng = np.random.default_rng(2)
    mask = rng.random((20, 50, 40)) > 0.995
    tiles = plan_tiles(mask.shape, (8, 16, 16), 0.5)
    assert select_tiles(tiles, mask) == [t for t in tiles if mask[t].any()]


def test_fold_ensemble_is_mean_of_single_runs() -> None:
    x = torch.from_numpy(np.random.default_rng(3).normal(size=(1, 12, 40, 40)).astype(np.float32))
    nets = [conv_net(1), conv_net(2), conv_net(3)]
    s = settings(tile_batch=1)
    together = sliding_window_predict(nets, x, s)
    separate = torch.stack([sliding_window_predict([n], x, s) for n in nets]).mean(0)
    torch.testing.assert_close(together, separate, rtol=0, atol=2e-6)


def test_tile_batching_matches_batch_one() -> None:
    x = torch.from_numpy(np.random.default_rng(4).normal(size=(1, 12, 40, 40)).astype(np.float32))
    net = conv_net(4)
    one = sliding_window_predict([net], x, settings(tile_batch=1))
    four = sliding_window_predict([net], x, settings(tile_batch=4))
    torch.testing.assert_close(one, four, rtol=0, atol=1e-5)


def test_mirroring_tta_is_identity_for_flip_equivariant_net_and_averages_flips() -> None:
    x = torch.from_numpy(np.random.default_rng(5).normal(size=(1, 12, 32, 32)).astype(np.float32))
    out = sliding_window_predict([affine(-1.5, 0.25)], x, settings(mirror_axes=(0, 1, 2)))
    torch.testing.assert_close(out, -1.5 * x + 0.25, rtol=0, atol=1e-5)
    # a position-dependent net: TTA = mean over the 4 flips of the Y/X axes
    ramp = torch.arange(16, dtype=torch.float32).view(1, 1, 1, 1, 16)
    net = lambda t: t + ramp  # noqa: E731
    tta = sliding_window_predict([net], x, settings(tile_size=(12, 32, 16), step=1.0, mirror_axes=(1, 2)))
    torch.testing.assert_close(tta - x, torch.full_like(x, 7.5), rtol=0, atol=1e-5)


class OOMNet(nn.Module):
    """Raises CUDA-style out-of-memory for batches larger than ``max_batch``; otherwise an affine map."""

    def __init__(self, max_batch: int) -> None:
        super().__init__()
        self.max_batch = max_batch
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        if x.shape[0] > self.max_batch:
            raise torch.OutOfMemoryError("simulated: CUDA out of memory")
        return 3 * x - 1


def test_out_of_memory_retries_with_smaller_batches(caplog: pytest.LogCaptureFixture) -> None:
    x = torch.from_numpy(np.random.default_rng(6).normal(size=(1, 12, 40, 40)).astype(np.float32))
    net = OOMNet(max_batch=1)
    with caplog.at_level(logging.WARNING):
        out = sliding_window_predict([net], x, settings(tile_batch=4))
    torch.testing.assert_close(out, 3 * x - 1, rtol=0, atol=1e-5)
    assert net.calls[0] == 4 and 2 in net.calls and net.calls[-1] == 1
    assert sum("out of memory" in r.message for r in caplog.records) == 2


def test_out_of_memory_plan_ends_with_cpu_accumulators() -> None:
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert _attempts(4, cuda, True) == [(4, cuda), (2, cuda), (1, cuda), (1, cpu)]
    assert _attempts(3, cpu, True) == [(3, cpu), (1, cpu)]
    assert _attempts(2, cuda, False) == [(2, cpu), (1, cpu)]


def test_out_of_memory_everywhere_is_raised() -> None:
    x = torch.zeros((1, 8, 16, 16))
    with pytest.raises(torch.OutOfMemoryError):
        sliding_window_predict([OOMNet(max_batch=0)], x, settings(tile_batch=2))


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"step": 0.0}, "step must be in"), ({"blend": "median"}, "blend must be one of"),
     ({"tile_size": (8, 16)}, "tile_size must be"), ({"mirror_axes": (3,)}, "mirror_axes"),
     ({"amp_dtype": "int8"}, "amp_dtype")],
)
def test_settings_validation(kw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings(**kw)


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="image must be"):
        sliding_window_predict([affine(1, 0)], torch.zeros((8, 16, 16)), settings())
    with pytest.raises(ValueError, match="mask shape"):
        sliding_window_predict([affine(1, 0)], torch.zeros((1, 8, 16, 16)), settings(), mask=np.ones((8, 16, 15)))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_autocast_matches_cpu_float32() -> None:
    x = torch.from_numpy(np.random.default_rng(7).normal(size=(1, 24, 64, 64)).astype(np.float32))
    net = conv_net(7)
    cpu = sliding_window_predict([net], x, settings())
    gpu = sliding_window_predict([net.cuda()], x, settings(), device="cuda")
    torch.testing.assert_close(cpu, gpu, rtol=0, atol=5e-2)


def test_tile_progress_logs_periodic_lines_when_not_on_a_terminal(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    """On a log (stderr not a terminal) the tiles report progress as INFO lines; progress=False shows nothing."""
    from synthct.inference import sliding_window

    monkeypatch.setattr(sliding_window, "PROGRESS_LOG_INTERVAL_S", 0.0)
    x = torch.zeros((1, 8, 32, 32))
    with caplog.at_level("INFO", logger="synthct.inference.sliding_window"):
        sliding_window_predict([affine(1.0, 0.0)], x, settings(tile_batch=1, progress=True))
    lines = [m for r in caplog.records if re.match(r"sliding window: \d+/\d+ tiles", m := r.getMessage())]
    assert len(lines) >= 2 and lines[-1].startswith("sliding window: ") and "(100 %)" in lines[-1], lines
    total = int(lines[-1].split("/")[1].split()[0])
    assert [f"{i}/{total} tiles" in line for i, line in enumerate(lines[:-1], start=1)] == [True] * (len(lines) - 1)
    caplog.clear()
    with caplog.at_level("INFO", logger="synthct.inference.sliding_window"):
        sliding_window_predict([affine(1.0, 0.0)], x, settings(tile_batch=1, progress=False))
    assert not [r for r in caplog.records if re.match(r"sliding window: \d+/", r.getMessage())]
