#!/usr/bin/env python
"""process.py wall time on the CPU for a SynthRAD-sized CBCT case, and where it goes.

    python benchmarks/cpu_case_time.py                    # median SynthRAD volume 98 x 398 x 465 at 1 x 1 x 3 mm
    python benchmarks/cpu_case_time.py --size 200 512 512

The case is built from the real CBCT of ``samples/pancreas_cbct`` (and its body mask): resampled onto a 1 x 1 x 3 mm
grid of the requested size (z, y, x) about the sample's centre, the 43 real slices mirrored along z to fill it, -1000
(mask 0) outside the real FOV. It is run through ``process.py`` (bundled models, ``--device cpu``) in a subprocess;
the stage times come from its log (read + validate, normalise, resample, tiles, resample back, write) and the peak
RSS from ``resource.getrusage`` of the child.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "pancreas_cbct"


def _mirror_z(image: np.ndarray, n: int) -> np.ndarray:
    """(Z, Y, X) → (n, Y, X) by repeating the volume forwards and backwards along z."""
    period = np.concatenate([image, image[::-1]])
    reps = int(np.ceil(n / period.shape[0]))
    return np.concatenate([period] * reps)[:n]


def build_case(size_zyx: tuple[int, int, int], root: Path) -> Path:
    """A grand-challenge input folder with a CBCT of ``size_zyx`` voxels at 1 x 1 x 3 mm from the real sample."""
    cbct, mask = (sitk.ReadImage(str(SAMPLE / f"{n}.mha")) for n in ("cbct", "mask"))
    nz, ny, nx = size_zyx
    spacing = (1.0, 1.0, 3.0)
    centre = np.array(cbct.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in cbct.GetSize()]))
    origin = centre - np.array(spacing) * (np.array([nx, ny, 43]) - 1) / 2
    ref = sitk.Image([nx, ny, 43], sitk.sitkInt16)
    ref.SetSpacing(spacing)
    ref.SetOrigin(tuple(origin))
    ref.SetDirection(cbct.GetDirection())
    out = {}
    for name, image, interp, default in (("cbct", cbct, sitk.sitkLinear, -1000), ("body", mask,
                                                                                 sitk.sitkNearestNeighbor, 0)):
        res = sitk.GetArrayFromImage(sitk.Resample(image, ref, sitk.Transform(), interp, default))
        arr = sitk.GetImageFromArray(_mirror_z(res, nz))
        arr.SetSpacing(spacing)
        arr.SetOrigin(tuple(origin))
        arr.SetDirection(cbct.GetDirection())
        out[name] = arr
    for name in ("cbct", "body"):
        (root / "images" / name).mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(out[name], str(root / "images" / name / "case.mha"), useCompression=True)
    (root / "region.json").write_text(json.dumps("Abdomen"))
    return root


_STAGES = re.compile(r"predicted \(.*?\) in ([\d.]+) s on cpu \((.*)\)")
_WROTE = re.compile(r"wrote .* in ([\d.]+) s")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, nargs=3, default=[98, 398, 465], metavar=("Z", "Y", "X"))
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="synthct-case-time-") as tmp:
        case = build_case(tuple(args.size), Path(tmp) / "input")
        t0 = time.perf_counter()
        run = subprocess.run([sys.executable, str(REPO / "process.py"), "--input", str(case), "--output",
                              str(Path(tmp) / "output"), "--device", "cpu"], capture_output=True, text=True)
        wall = time.perf_counter() - t0
    rss_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    if run.returncode != 0:
        print(run.stderr)
        return run.returncode
    predicted, wrote = _STAGES.search(run.stderr), _WROTE.search(run.stderr)
    tiles = re.search(r"sliding window: (\d+) of (\d+) tiles", run.stderr)
    load = [round(v, 1) for v in os.getloadavg()]
    print(f"case {tuple(args.size)} (z, y, x) at 1 x 1 x 3 mm; load average {load}")
    print(f"process.py wall {wall:.1f} s (incl. Python + torch start-up), run_case {float(wrote.group(1)):.1f} s, "
          f"prediction {float(predicted.group(1)):.1f} s: {predicted.group(2)}; tiles {tiles.group(1)} of "
          f"{tiles.group(2)}; read + validate + write = run_case - prediction = "
          f"{float(wrote.group(1)) - float(predicted.group(1)):.1f} s; peak RSS {rss_gb:.2f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
