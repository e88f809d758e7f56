"""Peak host memory (RSS) of ``process.py`` on the CPU for a median and a large SynthRAD2025-sized case.

The cases are built from the committed real porcine sample (``samples/porcine``: MR int16, body mask uint8) by
tiling it with mirroring (no seams) and cropping to (Z, Y, X) = 98 x 398 x 465 (the median Task 1 size,
``challenge.md`` §5.3) and 200 x 512 x 512 (a large one). The case is written in the grand-challenge input layout
at the model's spacing (so the input is not resampled) and ``process.py`` runs in a child process under
``/usr/bin/time -v`` (its "Maximum resident set size" is the child's peak RSS). Inference settings come from a
models.json written next to the case: the bundled MRI demo model, ``--step`` (default 1.0: fewer tiles; the
full-volume arrays, which set the peak, do not depend on the step).

``--mask-box`` keeps the body mask only inside a central box of 2 x 2 x 2 tiles, so that only the few tiles touching
it are computed (mask-aware skipping) while every full-volume array (input, mask, normalised input, accumulators,
output) keeps its full size: the same peak, minutes instead of hours on a loaded CPU. Run both variants on one case
to see that the peak does not change.

Prints, per case: voxels, input/output sizes, the wall time, the peak RSS and the peak in bytes per voxel, with the
machine's load average.

Run: ``nice -n 15 python benchmarks/process_memory.py [--cases median large] [--step 1.0] [--mask-box] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from synthct.contracts import synthrad

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples" / "porcine"
MODEL = "weights/mri/porcine-demo"
CASES = {"median": (98, 398, 465), "large": (200, 512, 512)}


def tile_mirrored(array: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """``array`` (Z, Y, X) repeated with alternate mirroring along each axis, cropped to ``shape``."""
    out = array
    for axis, n in enumerate(shape):
        parts, total, k = [], 0, 0
        while total < n:
            parts.append(out if k % 2 == 0 else np.flip(out, axis))
            total += out.shape[axis]
            k += 1
        out = np.concatenate(parts, axis=axis)
    return np.ascontiguousarray(out[: shape[0], : shape[1], : shape[2]])


def write_case(root: Path, shape: tuple[int, int, int], spacing_zyx: tuple[float, float, float],
               mask_box: tuple[int, int, int] | None = None) -> Path:
    """A grand-challenge input folder (images/mri, images/body, region.json) of ``shape``; returns its root.

    ``mask_box``: keep the body mask only inside a central box of this size (voxels).
    """
    mr = sitk.GetArrayFromImage(sitk.ReadImage(str(SAMPLES / "mr.mha")))
    mask = tile_mirrored(sitk.GetArrayFromImage(sitk.ReadImage(str(SAMPLES / "mask.mha"))), shape)
    if mask_box is not None:
        box = tuple(slice((n - b) // 2, (n - b) // 2 + b) for n, b in zip(shape, mask_box, strict=True))
        kept = np.zeros_like(mask)
        kept[box] = mask[box]
        mask = kept
    for sub, array in (("mri", tile_mirrored(mr, shape)), ("body", mask)):
        folder = root / "images" / sub
        folder.mkdir(parents=True)
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(tuple(float(s) for s in reversed(spacing_zyx)))
        sitk.WriteImage(image, str(folder / f"case-{sub}.mha"), useCompression=True)
    (root / "region.json").write_text(json.dumps("Abdomen"))
    return root


def write_models(root: Path, step: float) -> Path:
    """``root/resources/models.json`` routing every MRI region to the demo model (absolute path)."""
    entry = {"model": str(REPO / MODEL), "step": step, "blend": "mean", "tta": False}
    path = root / "resources" / "models.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"version": 1, "models": {"mri": dict.fromkeys(synthrad.region_codes(), entry)}}))
    return path


def run(case: Path, out: Path, models: Path) -> tuple[float, int, str]:
    """(wall s, peak RSS bytes, stderr tail) of ``process.py`` under ``/usr/bin/time -v``."""
    cmd = ["/usr/bin/time", "-v", sys.executable, str(REPO / "process.py"), "--input", str(case), "--output",
           str(out), "--models", str(models), "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"process.py failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    lines = [line for line in proc.stderr.splitlines() if "synthct" in line]
    return wall, peak_kb * 1024, "\n".join(lines[-4:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=["median", "large"])
    parser.add_argument("--step", type=float, default=1.0, help="sliding-window step (default 1.0)")
    parser.add_argument("--keep", type=Path, default=None, help="build the cases here and keep them")
    parser.add_argument("--mask-box", action="store_true", help="body mask only in a central 2x2x2-tile box")
    args = parser.parse_args()
    manifest = json.loads((REPO / MODEL / "synthct.json").read_text())
    spacing = tuple(manifest["spacing"])
    box = tuple(2 * p for p in manifest["patch_size"]) if args.mask_box else None
    work = args.keep or Path(tempfile.mkdtemp(prefix="synthct-mem-"))
    models = write_models(work / "app", args.step)
    print(f"model {MODEL} at spacing {spacing} mm, step {args.step}, mask box {box}, {os.cpu_count()} cores, "
          f"python {sys.version.split()[0]}")
    for name in args.cases:
        shape = CASES[name]
        case = write_case(work / name / "input", shape, spacing, box)
        out = work / name / "output"
        load = os.getloadavg()
        wall, peak, tail = run(case, out, models)
        voxels = int(np.prod(shape))
        (sct,) = (out / "images" / "synthetic-ct").glob("*.mha")
        disk = sct.stat().st_size / 2**20
        print(f"{name} {shape[0]}x{shape[1]}x{shape[2]} ({voxels / 1e6:.1f} M voxels; int16 input "
              f"{voxels * 2 / 2**20:.0f} MiB, float32 output {voxels * 4 / 2**20:.0f} MiB, {disk:.0f} MiB on disk): "
              f"wall {wall:.0f} s, "
              f"peak RSS {peak / 2**30:.2f} GiB = {peak / voxels:.1f} bytes/voxel; "
              f"load average before {load[0]:.2f}\n{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
