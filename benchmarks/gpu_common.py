"""Shared pieces of the GPU measurement scripts (gpu_inference.py, gpu_train_step.py; run by gpu_check.sh).

Sizes (GPU / ``--cpu-dry-run``), the result log (one JSON object per line in ``OUT/results.jsonl``, flushed after each
measurement so that a phase killed by its time box still leaves what it measured), timing with CUDA events, FLOP
counting with ``torch.utils.flop_counter`` and the case volumes with a realistic elliptic body mask.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

#: NVIDIA H200 SXM dense FP16/BF16 tensor-core peak (datasheet: 1,979 TFLOP/s "with sparsity", i.e. ~990 dense; the
#: same figure as the H100 SXM). The device notes of this workplace measured 769-798 TFLOP/s for a large bf16 matmul.
H200_PEAK_TFLOPS = 990.0
#: NVIDIA T4 FP16 tensor-core peak ("65 TFLOPS mixed precision FP16/FP32", T4 datasheet).
T4_PEAK_TFLOPS = 65.0
HU_PER_Z = 500.0  # error report: HU per normalised z unit (the scaffolded models' target std)


@dataclass(frozen=True)
class Sizes:
    features: tuple[int, ...]
    patch: tuple[int, int, int]
    median: tuple[int, int, int]
    large: tuple[int, int, int]
    folds: int
    tile_batch: int
    iters: int
    spacing: tuple[float, float, float] = (3.0, 1.0, 1.0)


GPU_SIZES = Sizes((32, 64, 128, 256, 320, 320), (48, 192, 192), (98, 398, 465), (200, 512, 512), 5, 4, 10)
DRY_SIZES = Sizes((4, 8, 16), (16, 32, 32), (12, 40, 44), (16, 48, 56), 2, 2, 2)


def sizes(dry: bool) -> Sizes:
    return DRY_SIZES if dry else GPU_SIZES


def pick_device(dry: bool) -> torch.device:
    if dry:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --cpu-dry-run on a CPU machine")
    return torch.device("cuda", torch.cuda.current_device())


class Log:
    """Appends one JSON object per measurement to ``out/results.jsonl`` and prints a readable line."""

    def __init__(self, out: Path, phase: str, dry: bool) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / "results.jsonl"
        self.phase = phase
        self.dry = dry

    def __call__(self, kind: str, **fields: Any) -> None:
        row = {"phase": self.phase, "kind": kind, "dry_run": self.dry, "t": round(time.time(), 1), **fields}
        with self.path.open("a") as handle:
            handle.write(json.dumps(row, default=str) + "\n")
        shown = " ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
        print(f"[{self.phase}] {kind}: {shown}", flush=True)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def read_results(out: Path) -> list[dict[str, Any]]:
    path = out / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def environment(device: torch.device) -> dict[str, Any]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {"device": str(device), "name": name, "torch": torch.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads(), "cudnn": torch.backends.cudnn.version() if device.type == "cuda"
            else None}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], Any], device: torch.device, iters: int, warmup: int = 2) -> float:
    """Median seconds of ``fn`` over ``iters`` calls after ``warmup`` calls (CUDA events on the GPU)."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def timed_once(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t0


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn``, counted by ``torch.utils.flop_counter`` (convolutions and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def body_mask(shape: tuple[int, int, int]) -> np.ndarray:
    """A patient-like body: an elliptic cross-section (axes 0.44·Y by 0.40·X, centre a little below the middle, as a
    patient lies on the table) whose size tapers towards both ends of the scan (cosine, down to 75 %)."""
    z, y, x = shape
    yy, xx = np.mgrid[:y, :x].astype(np.float32)
    mask = np.zeros(shape, bool)
    for k in range(z):
        f = 0.75 + 0.25 * np.cos(np.pi * (k / max(z - 1, 1) - 0.5)) ** 0.5
        ry, rx = 0.44 * y * f, 0.40 * x * f
        mask[k] = ((yy - 0.53 * y) / ry) ** 2 + ((xx - 0.5 * x) / rx) ** 2 <= 1
    return mask


def mr_like(mask: np.ndarray, seed: int = 0) -> np.ndarray:
    """A smooth random "tissue" field plus noise inside the mask, 0 outside (float32, scanner-like units)."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(size=tuple(max(2, s // 16) for s in mask.shape)).astype(np.float32)
    t = torch.nn.functional.interpolate(torch.from_numpy(coarse)[None, None], size=mask.shape, mode="trilinear",
                                        align_corners=False)[0, 0].numpy()
    image = 300 + 120 * t + rng.normal(0, 15, size=mask.shape).astype(np.float32)
    image[~mask] = 0.0
    return image.astype(np.float32)


def n_tiles(shape: tuple[int, int, int], patch: tuple[int, int, int], step: float,
            mask: np.ndarray | None = None) -> int:
    """Tiles of the sliding window (those touching ``mask`` when given), with the engine's padding."""
    from synthct.inference.sliding_window import select_tiles
    from synthct.inference.tiling import centred_padding, padded_shape, plan_tiles

    tiles = plan_tiles(padded_shape(shape, patch), patch, step)
    if mask is None:
        return len(tiles)
    return len(select_tiles(tiles, np.pad(mask, centred_padding(shape, patch))))


def add_common_args(parser) -> None:  # noqa: ANN001
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/synthct-gpu-check")))
    parser.add_argument("--cpu-dry-run", action="store_true", help="tiny sizes on the CPU: the same code path")


def stub_missing_io_libraries() -> None:
    """Empty stand-ins for SimpleITK / nibabel / blosc2 / imagecodecs where missing (the GPU image), as
    inference_speed.py does: the stock predictor and trainer code paths timed here never call them.
    ``SYNTHCT_STUB_IO=1`` stubs them even where installed (to check that on a CPU machine)."""
    import inference_speed as isp

    if os.environ.get("SYNTHCT_STUB_IO") == "1":
        sys.meta_path.insert(0, isp._StubFinder())
    else:
        isp._stub_missing_io_libraries()
