"""Time the SynthRAD2025 image metrics (MAE, PSNR, masked MS-SSIM) on one median-size Task 1 case.

The case is 98 x 398 x 465 voxels (z, y, x), the median Task 1 size (``challenge.md`` §2), built from the committed
porcine CT sample by tiling it (and its body mask) and cropping; the "sCT" is the CT plus Gaussian noise
(sigma 40 HU) and a 1-voxel shift, as float32 like a network output. Prints the machine, versions, each metric's
value and its wall time (best of ``--repeats``).

Run: ``python benchmarks/evaluate_speed.py [--repeats 3]``
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy
import SimpleITK as sitk

from synthct.metrics.image import mae, ms_ssim, psnr

SHAPE = (98, 398, 465)
SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "porcine"


def build_case(shape: tuple[int, int, int] = SHAPE, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ct int16, sct float32, mask uint8) of ``shape``, tiled from the porcine sample."""
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(SAMPLES / "ct.mha")))
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(SAMPLES / "mask.mha")))
    reps = [-(-n // s) for n, s in zip(shape, ct.shape, strict=True)]
    crop = tuple(slice(0, n) for n in shape)
    ct_big = np.tile(ct, reps)[crop].copy()
    mask_big = np.tile(mask, reps)[crop].copy()
    rng = np.random.default_rng(seed)
    sct = np.roll(ct_big, 1, axis=2).astype(np.float32) + rng.normal(0.0, 40.0, shape).astype(np.float32)
    return ct_big, sct, mask_big


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _times(fn, repeats: int) -> tuple[float, list[float]]:
    """Value of ``fn()`` and the wall time of each of ``repeats`` calls, seconds."""
    value, times = float("nan"), []
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return value, times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per metric (best is reported)")
    args = parser.parse_args(argv)

    print(f"machine : {_cpu_model()}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.machine()}")
    versions = f"numpy {np.__version__}, scipy {scipy.__version__}, SimpleITK {sitk.Version_VersionString()}"
    print(f"python  : {platform.python_version()}, {versions}")
    t0 = time.perf_counter()
    ct, sct, mask = build_case()
    print(
        f"case    : {ct.shape} (z, y, x), ct {ct.dtype}, sct {sct.dtype}, mask {mask.mean():.1%} of voxels, "
        f"built in {time.perf_counter() - t0:.1f} s"
    )

    first = best = 0.0
    for name, fn in (("mae", mae), ("psnr", psnr), ("ms_ssim", ms_ssim)):
        value, times = _times(lambda fn=fn: fn(ct, sct, mask=mask), args.repeats)
        first, best = first + times[0], best + min(times)
        print(f"{name:8s}: {value:.6f}  first {times[0]:.2f} s, best {min(times):.2f} s")
    print(f"total   : first {first:.2f} s, best {best:.2f} s for mae + psnr + ms_ssim ({args.repeats} runs each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
