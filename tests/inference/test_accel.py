"""Opt-in tile-engine switches (synthct.inference.accel): same HU as the eager engine on the CPU, refusals, plumbing.

Equality is checked in HU at 500 HU per z unit (the scaffolded models' target std), within 1e-3 HU in float32.
"""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from synthct.inference.accel import (
    COMPILE_MODES,
    DEFAULT_COMPILE_CACHE,
    RESIDENT_DTYPES,
    AccelOptions,
    TileEngine,
    cast_resident,
    prepare_networks,
)
from synthct.inference.sliding_window import SlidingWindowSettings, sliding_window_predict

HU_PER_Z = 500.0
TILE = (8, 32, 32)
COMPILE_REASON = ("torch.compile on this 2-core CPU took 64 s for one tiny network forward (measured, cold cache); "
                  "set SYNTHCT_TEST_COMPILE=1 to run it")


def small_net(seed: int = 0) -> torch.nn.Module:
    """A 3-stage ResidualUNetUpsample (the engine's real network class) with random weights."""
    from synthct.network.architectures import synthrad_arch_kwargs
    from synthct.network.build import architecture_block, build_network

    torch.manual_seed(seed)
    net = build_network(architecture_block("ResidualUNetUpsample", synthrad_arch_kwargs([4, 8, 16])), 1, 1)
    return net.eval()


def volume() -> tuple[torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(1, 14, 50, 45)).astype(np.float32))
    mask = np.zeros((14, 50, 45), bool)
    mask[2:12, 5:45, 4:40] = True
    return x, mask


def window(**kw) -> SlidingWindowSettings:
    return SlidingWindowSettings(**{"tile_size": TILE, "step": 0.5, "tile_batch": 3, "progress": False, **kw})


def run(options: AccelOptions, nets: list[torch.nn.Module] | None = None) -> tuple[torch.Tensor, TileEngine]:
    nets = prepare_networks([copy.deepcopy(n) for n in (nets or [small_net(0), small_net(1)])], options)
    x, mask = volume()
    engine = TileEngine(nets, options, "cpu", TILE, 1)
    return sliding_window_predict(nets, x, window(), mask=mask, engine=engine), engine


@pytest.fixture(scope="module")
def eager() -> torch.Tensor:
    x, mask = volume()
    return sliding_window_predict([small_net(0), small_net(1)], x, window(), mask=mask)


def max_hu(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max()) * HU_PER_Z


@pytest.mark.parametrize("options", [AccelOptions(channels_last=True), AccelOptions(warmup=True),
                                     AccelOptions(warmup=True, channels_last=True)],
                         ids=["channels_last", "warmup", "warmup+channels_last"])
def test_switch_gives_the_eager_hu(options: AccelOptions, eager: torch.Tensor) -> None:
    out, engine = run(options)
    assert max_hu(out, eager) <= 1e-3
    assert engine.stats["prepared"] == 1
    if options.warmup:
        assert engine.stats["warmup_s"] > 0


def test_channels_last_networks_and_tiles_really_are_channels_last() -> None:
    (net,) = prepare_networks([small_net()], AccelOptions(channels_last=True))
    conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv3d) and m.weight.shape[-1] == 3)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    seen = []
    net.register_forward_pre_hook(lambda _m, args: seen.append(args[0].is_contiguous(
        memory_format=torch.channels_last_3d)))
    TileEngine([net], AccelOptions(channels_last=True), "cpu", TILE, 1).runner(2)(torch.randn(2, 1, *TILE))
    assert seen == [True]


def test_warmup_runs_every_batch_shape_once_before_the_loop() -> None:
    net = small_net()
    shapes = []
    net.register_forward_pre_hook(lambda _m, args: shapes.append(args[0].shape[0]))
    engine = TileEngine([net], AccelOptions(warmup=True), "cpu", TILE, 1)
    fn = engine.runner(4, 2)
    assert sorted(shapes) == [2, 4]  # warm-up of the full and the short last batch
    assert engine.runner(4, 2) is fn and engine.stats["prepared"] == 1  # cached
    engine.runner(2, 1)  # a new size (OOM fallback) prepares again
    assert engine.stats["prepared"] == 2


def test_fixed_shape_padding_of_the_last_batch_changes_nothing() -> None:
    """Compile and graph modes pad a short batch with zero tiles: each tile is still computed on its own."""
    net = small_net()
    engine = TileEngine([net], AccelOptions(), "cpu", TILE, 1)
    x = torch.randn(2, 1, *TILE)
    padded = TileEngine._padded(engine._forward, 4)
    torch.testing.assert_close(padded(x), engine._forward(x), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="exceeds the prepared batch size 4"):
        padded(torch.randn(5, 1, *TILE))


def test_cuda_only_switches_are_refused_on_the_cpu() -> None:
    with pytest.raises(ValueError, match="cuda_graphs needs a CUDA device, got 'cpu'"):
        TileEngine([small_net()], AccelOptions(cuda_graphs=True), "cpu", TILE, 1)
    with pytest.raises(ValueError, match="resident_dtype 'float16' needs a CUDA device"):
        TileEngine([small_net()], AccelOptions(resident_dtype="float16"), "cpu", TILE, 1)
    with pytest.raises(ValueError, match="must equal the autocast dtype, got amp 'bfloat16'"):
        AccelOptions(resident_dtype="float16").check(torch.device("cuda"), "bfloat16")
    AccelOptions(resident_dtype="bfloat16", cuda_graphs=True).check(torch.device("cuda"), "bfloat16")  # allowed


@pytest.mark.parametrize(("kw", "message"), [
    ({"compile_mode": "fast"}, "compile_mode must be None or one of"),
    ({"resident_dtype": "int8"}, "resident_dtype must be one of"),
    ({"cuda_graphs": True, "compile_mode": "reduce-overhead"}, "captures CUDA graphs itself"),
])
def test_options_validation(kw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AccelOptions(**kw)


def test_resident_cast_keeps_norms_and_scales_float32() -> None:
    net = cast_resident(small_net(), torch.bfloat16)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
    norms = [m for m in net.modules() if isinstance(m, torch.nn.InstanceNorm3d)]
    assert convs and norms
    assert all(m.weight.dtype == torch.bfloat16 and (m.bias is None or m.bias.dtype == torch.bfloat16)
               for m in convs)
    assert all(m.weight.dtype == torch.float32 and m.bias.dtype == torch.float32 for m in norms)


def test_resident_weights_equal_autocasts_own_weight_cast() -> None:
    """The mechanism on the CPU's bf16 autocast: pre-cast conv weights give the autocast forward's numbers exactly
    (on CUDA the engine does the same with fp16/bf16; the GPU script checks it there)."""
    net = small_net(3)
    resident = cast_resident(copy.deepcopy(net), torch.bfloat16)
    x = torch.randn(2, 1, *TILE)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = net(x).float(), resident(x).float()
    assert torch.equal(a, b)


def test_options_from_models_json_and_unknown_keys() -> None:
    options = AccelOptions.from_json({"warmup": True, "compile_mode": "default", "resample_on_device": True})
    assert options == AccelOptions(warmup=True, compile_mode="default", resample_on_device=True)
    assert AccelOptions.from_json(None) == AccelOptions() and not AccelOptions().engine_needed
    assert AccelOptions.from_json(options.to_json()) == options
    with pytest.raises(ValueError, match=r"unknown accel keys \['graphs'\]"):
        AccelOptions.from_json({"graphs": True})


def test_cli_choices_match_the_engine() -> None:
    from synthct.cli import predict

    assert predict.COMPILE_MODES == COMPILE_MODES and predict.RESIDENT_DTYPES == tuple(RESIDENT_DTYPES)
    assert predict.DEFAULT_COMPILE_CACHE == DEFAULT_COMPILE_CACHE


def test_routing_reads_the_accel_block(tmp_path: Path, tiny_model: Path) -> None:
    from synthct.challenge.errors import CaseError
    from synthct.challenge.routing import resolve_route

    entry = {"model": os.path.relpath(tiny_model, tmp_path), "accel": {"warmup": True, "channels_last": True}}
    path = tmp_path / "resources" / "models.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"version": 1, "models": {"mri": {"HN": entry}}}))
    route = resolve_route(path, "mri", "HN", "cpu")
    assert route.options.accel == AccelOptions(warmup=True, channels_last=True)
    entry["accel"] = {"cuda_graph": True}
    path.write_text(json.dumps({"version": 1, "models": {"mri": {"HN": entry}}}))
    with pytest.raises(CaseError, match="unknown accel keys"):
        resolve_route(path, "mri", "HN", "cpu")


def test_predictor_switches_and_device_resampling_give_the_same_hu(tiny_model: Path) -> None:
    """Whole predictor on a case whose spacing differs from the model's (so it resamples): every CPU switch at once
    gives the eager HU; CUDA-only switches are refused at construction."""
    from synthct.inference.predictor import InferenceOptions, SyntheticCTPredictor

    rng = np.random.default_rng(5)
    image = rng.normal(100, 30, size=(12, 70, 60)).astype(np.float32)
    mask = np.zeros(image.shape, np.uint8)
    mask[1:11, 8:60, 6:52] = 1
    spacing = (2.9, 1.1, 0.95)  # the tiny model is at (2.5, 1, 1) mm
    base = InferenceOptions(device="cpu", progress=False)
    eager = SyntheticCTPredictor(tiny_model, base).predict(image, mask, spacing)
    fast = InferenceOptions(device="cpu", progress=False, accel=AccelOptions(
        warmup=True, channels_last=True, resample_on_device=True))
    predictor = SyntheticCTPredictor(tiny_model, fast)
    assert predictor.engine is not None
    out = predictor.predict(image, mask, spacing)
    assert out.shape == image.shape and out.dtype == np.float32
    assert float(np.abs(out - eager).max()) <= 1e-3
    with pytest.raises(ValueError, match="cuda_graphs needs a CUDA device"):
        SyntheticCTPredictor(tiny_model, InferenceOptions(device="cpu", accel=AccelOptions(cuda_graphs=True)))


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("SYNTHCT_TEST_COMPILE") != "1", reason=COMPILE_REASON)
def test_compiled_engine_gives_the_eager_hu(eager: torch.Tensor, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    options = AccelOptions(compile_mode="default", compile_cache_dir=str(tmp_path / "inductor"))
    t0 = time.perf_counter()
    out, engine = run(options)
    assert max_hu(out, eager) <= 1e-3
    assert engine.stats["warmup_s"] > 0 and (tmp_path / "inductor").is_dir()
    print(f"compiled engine: {time.perf_counter() - t0:.1f} s incl. compilation")
