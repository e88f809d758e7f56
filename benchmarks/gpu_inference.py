"""GPU inference measurements of issue 16, one phase per call (gpu_check.sh runs them, each in its own time box):

    python benchmarks/gpu_inference.py tiles          # per-tile time, counted FLOPs, % of peak; stock, ours, switches
    python benchmarks/gpu_inference.py tiles-compile  # the same for torch.compile modes (compile cost reported apart)
    python benchmarks/gpu_inference.py window         # sliding window, median case, 1 fold: stock vs ours vs switches
    python benchmarks/gpu_inference.py case           # whole case, 5-fold random-weight model folder, median + large
    ... --cpu-dry-run                                 # tiny sizes on the CPU (same code; CUDA-only switches refused)

Every measurement is one JSON line in ``$OUT/results.jsonl`` (see gpu_common.py); gpu_summary.py tabulates them and
projects the T4 budget. Errors are max |difference| in HU (500 HU per z) against the eager fp16 output and against a
float32 forward (TF32 off) of the same network and input; inside the body for whole volumes.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from gpu_common import (
    H200_PEAK_TFLOPS,
    HU_PER_Z,
    Log,
    add_common_args,
    body_mask,
    count_flops,
    environment,
    median_seconds,
    mr_like,
    n_tiles,
    peak_gib,
    pick_device,
    reset_peak,
    sizes,
    sync,
    timed_once,
)

from synthct.inference.accel import AccelOptions, TileEngine, prepare_networks

#: Switch sets compared per tile and per sliding window (compile modes: the tiles-compile phase).
VARIANTS: dict[str, dict] = {
    "eager": {},
    "warmup": {"warmup": True},
    "channels_last": {"channels_last": True},
    "resident_fp16": {"resident_dtype": "float16"},
    "cuda_graphs": {"cuda_graphs": True},
    "graphs+resident+cl": {"cuda_graphs": True, "resident_dtype": "float16", "channels_last": True},
}
COMPILE_VARIANTS: dict[str, dict] = {
    "compile_default": {"compile_mode": "default"},
    "compile_max-autotune-no-cudagraphs": {"compile_mode": "max-autotune-no-cudagraphs"},
    "compile_default+graphs": {"compile_mode": "default", "cuda_graphs": True},
}


def build(name: str, features, device: torch.device, seed: int = 0) -> torch.nn.Module:
    from synthct.network.architectures import synthrad_arch_kwargs
    from synthct.network.build import architecture_block, build_network

    torch.manual_seed(seed)
    net = build_network(architecture_block(name, synthrad_arch_kwargs(list(features), residual=True)), 1, 1)
    with torch.no_grad():
        net.decoder.seg_layers[-1].bias.fill_(2.0)  # outputs in the range of real normalised CT
    return net.to(device).eval()


def fp32_forward(net, x: torch.Tensor) -> torch.Tensor:
    """A true float32 forward (TF32 off) as the reference."""
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.inference_mode():
            return net(x).float()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags


def options_for(spec: dict, device: torch.device) -> tuple[AccelOptions | None, str]:
    """AccelOptions, or None with the refusal message when the device cannot run the switch."""
    options = AccelOptions(**spec)
    try:
        options.check(device, "float16")
    except ValueError as exc:
        return None, str(exc)
    return options, ""


def amp_ctx(device: torch.device):
    return torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else torch.autocast("cpu",
                                                                                                    enabled=False)


# ------------------------------------------------------------------------------------------------------------- tiles
def phase_tiles(args, log: Log, variants: dict[str, dict]) -> None:
    s, device = sizes(args.cpu_dry_run), pick_device(args.cpu_dry_run)
    torch.backends.cudnn.benchmark = True
    log("environment", **environment(device))
    ours = build("ResidualUNetUpsample", s.features, device)
    x1 = torch.randn(1, 1, *s.patch, device=device)
    xb = torch.randn(s.tile_batch, 1, *s.patch, device=device)
    with torch.inference_mode(), amp_ctx(device):
        flops = count_flops(lambda: ours(x1))
    log("flops", network="ResidualUNetUpsample", params_M=sum(p.numel() for p in ours.parameters()) / 1e6,
        patch=s.patch, tflop_per_tile=flops / 1e12, peak_tflops_used=H200_PEAK_TFLOPS,
        peak_source="NVIDIA H200 SXM datasheet, dense FP16 tensor core (1979 with sparsity / 2)")
    if variants is VARIANTS:
        _stock_tiles(s, device, log, x1, xb)
    reference = fp32_forward(ours, xb)
    eager_out = None
    for name, spec in variants.items():
        options, refusal = options_for(spec, device)
        if options is None:
            log("tile", variant=name, refused=refusal)
            continue
        try:
            net = prepare_networks([copy.deepcopy(ours)], options)[0]
            reset_peak(device)
            engine = TileEngine([net], options, device, s.patch, 1)
            fn, prep_s = timed_once(lambda engine=engine: engine.runner(s.tile_batch), device)
            with torch.inference_mode():
                first_s = timed_once(lambda fn=fn: fn(xb), device)[1]
                per_batch = median_seconds(lambda fn=fn: fn(xb), device, s.iters)
                out = fn(xb).float()
        except Exception as exc:  # a failing switch is a result too; the others still run
            log("tile", variant=name, failed=f"{type(exc).__name__}: {str(exc)[:300]}")
            continue
        if name == "eager":
            eager_out = out
        per_tile = per_batch / s.tile_batch
        log("tile", variant=name, batch=s.tile_batch, per_tile_ms=per_tile * 1e3, first_batch_s=first_s,
            prepare_s=prep_s, engine_stats=dict(engine.stats), achieved_tflops=flops / per_tile / 1e12,
            pct_peak=100 * flops / per_tile / 1e12 / H200_PEAK_TFLOPS,
            err_vs_fp32_hu=float((out - reference).abs().max()) * HU_PER_Z,
            err_vs_eager_hu=None if eager_out is None else float((out - eager_out).abs().max()) * HU_PER_Z,
            peak_GiB=peak_gib(device))
        del engine, fn, net
        reset_peak(device)


def _stock_tiles(s, device, log: Log, x1: torch.Tensor, xb: torch.Tensor) -> None:
    """Stock ResidualUNet (transposed-conv decoder, the paper's 57 M net) at batch 1 and our tile batch, eager."""
    stock = build("ResidualUNet", s.features, device)
    with torch.inference_mode(), amp_ctx(device):
        flops = count_flops(lambda net=stock: net(x1))
        for batch, x in ((1, x1), (s.tile_batch, xb)):
            per_tile = median_seconds(lambda x=x, net=stock: net(x), device, s.iters) / batch
            log("tile", variant=f"stock_ResidualUNet_b{batch}", batch=batch, per_tile_ms=per_tile * 1e3,
                tflop_per_tile=flops / 1e12, achieved_tflops=flops / per_tile / 1e12,
                pct_peak=100 * flops / per_tile / 1e12 / H200_PEAK_TFLOPS,
                params_M=sum(p.numel() for p in stock.parameters()) / 1e6)
    del stock
    reset_peak(device)


# ------------------------------------------------------------------------------------------------------------ window
def phase_window(args, log: Log) -> None:
    """Median volume, one fold, step 0.3: stock nnUNetPredictor vs ours (eager and each switch), errors in the body
    vs our engine with a float32 forward (TF32 off)."""
    from gpu_common import stub_missing_io_libraries

    stub_missing_io_libraries()
    import inference_speed as isp  # the existing stock-vs-ours benchmark: its stock runner

    from synthct.inference.sliding_window import SlidingWindowSettings, sliding_window_predict

    s, device = sizes(args.cpu_dry_run), pick_device(args.cpu_dry_run)
    torch.backends.cudnn.benchmark = True
    mask = body_mask(s.median)
    image_np = mr_like(mask)
    body = image_np[mask]
    image = torch.from_numpy(np.where(mask, (image_np - body.mean()) / body.std(), -2.0).astype(np.float32))[None]
    net = build("ResidualUNetUpsample", s.features, device)
    stock_args = SimpleNamespace(step=0.3, blend="mean", patch=list(s.patch), repeats=2)
    isp.run_stock(net, image, SimpleNamespace(**{**vars(stock_args), "repeats": 1}), device)  # warm-up
    stock_out, t_stock, tiles_all = isp.run_stock(net, image, stock_args, device)
    computed = n_tiles(s.median, s.patch, 0.3, mask)
    settings = SlidingWindowSettings(tile_size=s.patch, step=0.3, tile_batch=s.tile_batch, progress=False)
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    ref = sliding_window_predict([net], image, SlidingWindowSettings(**{**vars(settings), "amp_dtype": "float32"}),
                                 device, mask=mask)[0].numpy()
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags
    body_err = lambda out: float(np.abs(out - ref)[mask].max()) * HU_PER_Z  # noqa: E731
    log("window", variant="stock_nnUNetPredictor", seconds=t_stock, tiles=tiles_all,
        err_vs_fp32_hu=body_err(stock_out), volume=s.median)
    eager_out, t_eager = None, None
    last = computed % s.tile_batch or s.tile_batch
    for name, spec in VARIANTS.items():
        options, refusal = options_for(spec, device)
        if options is None:
            log("window", variant=name, refused=refusal)
            continue
        try:
            nets = prepare_networks([copy.deepcopy(net)], options)
            engine = TileEngine(nets, options, device, s.patch, 1) if options.engine_needed else None
            prep_s = timed_once(lambda e=engine: e.runner(s.tile_batch, last), device)[1] if engine else 0.0
            reset_peak(device)
            run = lambda nets=nets, engine=engine: sliding_window_predict(  # noqa: E731
                nets, image, settings, device, mask=mask, engine=engine)
            run()
            times = [timed_once(run, device) for _ in range(2)]
        except Exception as exc:
            log("window", variant=name, failed=f"{type(exc).__name__}: {str(exc)[:300]}")
            continue
        out, seconds = min(times, key=lambda t: t[1])
        out = out[0].numpy()
        if name == "eager":
            eager_out, t_eager = out, seconds
        log("window", variant=name, seconds=seconds, tiles=computed, prepare_s=prep_s,
            speedup_vs_stock=t_stock / seconds, speedup_vs_eager=None if t_eager is None else t_eager / seconds,
            err_vs_fp32_hu=body_err(out),
            diff_vs_eager_hu=None if eager_out is None else float(np.abs(out - eager_out)[mask].max()) * HU_PER_Z,
            peak_GiB=peak_gib(device))
        del nets, engine
        reset_peak(device)


# -------------------------------------------------------------------------------------------------------------- case
def export_random_model(root: Path, s) -> Path:
    from synthct.network.export import export_model
    from synthct.network.scaffold import random_training_results

    results = random_training_results(root / "results", task="mri", features=s.features, patch_size=s.patch,
                                      spacing=s.spacing, folds=tuple(range(s.folds)))
    return export_model(results, root / "model", half=True)


def write_output(hu: np.ndarray, path: Path) -> str:
    """process.py writes a compressed .mha through SimpleITK; without SimpleITK (the GPU image) the same float32
    array goes to an uncompressed .npy as a stand-in (what was used is recorded)."""
    try:
        import SimpleITK  # noqa: F401
    except ImportError:
        np.save(path.with_suffix(".npy"), hu)
        return "np.save (stand-in: no SimpleITK)"
    from synthct.io.image import Geometry, write_image_atomic

    geometry = Geometry(hu.shape[::-1], (1.0, 1.0, 3.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    write_image_atomic(hu, geometry, path.with_suffix(".mha"))
    return "SimpleITK .mha, compressed (as process.py)"


def phase_case(args, log: Log) -> None:
    """process.py-equivalent: load the model folder, normalise, (resample), tiles, stitch, HU, write; 5 folds."""
    from synthct.inference.predictor import InferenceOptions, SyntheticCTPredictor

    s, device = sizes(args.cpu_dry_run), pick_device(args.cpu_dry_run)
    dry = args.cpu_dry_run
    fast = AccelOptions(warmup=True, channels_last=True, resample_on_device=True,
                        **({} if dry else {"cuda_graphs": True, "resident_dtype": "float16"}))
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        model, export_s = timed_once(lambda: export_random_model(Path(tmp), s), device)
        log("model", folds=s.folds, export_s=export_s, fp16_files=True,
            bytes=sum(p.stat().st_size for p in model.rglob("*.safetensors")))
        _resampling(s, device, log)
        # the order keeps the most wanted numbers first, should the phase's time box end it early
        for case, config in (("median", "eager"), ("median", "accel"), ("large", "accel"), ("large", "eager")):
            shape = s.median if case == "median" else s.large
            mask = body_mask(shape)
            image = mr_like(mask, seed=1)
            options = InferenceOptions(device=str(device), progress=False,
                                       tile_batch=s.tile_batch if dry else 0,
                                       accel=fast if config == "accel" else AccelOptions())
            reset_peak(device)
            predictor, load_s = timed_once(lambda o=options: SyntheticCTPredictor(model, o), device)
            hu, predict_s = timed_once(lambda p=predictor, i=image, m=mask: p.predict(i, m, s.spacing), device)
            how, write_s = timed_once(lambda h=hu: write_output(h, Path(tmp) / "sct"), device)
            log("case", case=case, config=config, shape=shape, folds=s.folds,
                tiles_per_fold=n_tiles(shape, s.patch, 0.3, mask), body_fraction=float(mask.mean()),
                load_s=load_s, predict_s=predict_s, write_s=write_s, total_s=load_s + predict_s + write_s,
                write=how, engine_stats=None if predictor.engine is None else dict(predictor.engine.stats),
                peak_GiB=peak_gib(device), accel=options.accel.to_json())
            del predictor, hu


def _resampling(s, device: torch.device, log: Log) -> None:
    """Input resampling (median case, 1.05x spacing) on the CPU vs on the device: time and max difference."""
    from synthct.inference.predictor import _resample

    mask = body_mask(s.median)
    z = torch.from_numpy(mr_like(mask))[None]
    shape = [round(n * 1.05) for n in s.median]
    cpu, t_cpu = timed_once(lambda: _resample(z, shape, "trilinear"), torch.device("cpu"))
    dev, t_dev = timed_once(lambda: _resample(z.to(device), shape, "trilinear").cpu(), device)
    log("resample", shape_in=s.median, shape_out=shape, cpu_s=t_cpu, device_s_incl_transfers=t_dev,
        max_abs_diff=float((cpu - dev).abs().max()), max_abs_value=float(z.abs().max()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("phase", choices=("tiles", "tiles-compile", "window", "case"))
    parser.add_argument("--tmp", default=None, help="folder for the exported model (default: system temp)")
    add_common_args(parser)
    args = parser.parse_args()
    log = Log(args.out, args.phase, args.cpu_dry_run)
    if args.phase == "tiles":
        phase_tiles(args, log, VARIANTS)
    elif args.phase == "tiles-compile":
        phase_tiles(args, log, {"eager": {}, **COMPILE_VARIANTS})
    elif args.phase == "window":
        phase_window(args, log)
    else:
        phase_case(args, log)
    sync(pick_device(args.cpu_dry_run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
