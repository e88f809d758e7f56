#!/usr/bin/env python
"""Check a synthct output folder against its grand-challenge input folder and a stored reference summary.

    python scripts/check_output.py --input test/mri/input --output OUT --expected test/mri/expected_output.json

Used by the container job (``.ci/container.sh``, on the files the image wrote) and by the CPU test
``tests/container/test_test_cases.py`` (on the files ``process.py`` wrote in-process). Checks, following
``challenge.md`` §4 and §12:

1. ``OUT`` holds exactly one file, ``images/synthetic-ct/<input image name>.mha`` (nothing else, no temporary files);
2. its size, spacing, origin and direction equal the input image's (spacing/origin to 1e-6 mm);
3. voxel type float32 or int16, every voxel finite and inside [-1024, 3071] HU;
4. every voxel outside the body mask is air, -1000 HU;
5. the HU summary inside the body mask (voxel count, mean, std, min, max, percentiles) matches the reference summary
   in ``--expected`` within its ``tolerance_hu`` (the voxel count exactly).

The references are written by ``python scripts/make_test_cases.py reference`` (:func:`write_reference`, after checks
1-4 pass). They describe the output of the random-weight smoke-test models of
``scripts/make_test_cases.py`` on the CPU in float32, which is deterministic; they say nothing about sCT quality.
A CUDA run (fp16 autocast) or other weights will not match them; checks 1-4 hold for any model.

Needs only numpy and SimpleITK. Exit code 0 when every check passes, 1 otherwise (one line per failure).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

HU_RANGE = (-1024.0, 3071.0)
AIR_HU = -1000.0
OUTPUT_DIR = "images/synthetic-ct"
IMAGE_DIRS = ("images/mri", "images/cbct")
MASK_DIR = "images/body"
PERCENTILES = (1, 5, 25, 50, 75, 95, 99)
#: Default tolerance of the summary statistics, HU. CPU float32 runs of the same weights agree to ~1e-3 HU.
DEFAULT_TOLERANCE_HU = 0.5
GEOMETRY_TOL = 1e-6
ALLOWED_PIXEL_TYPES = {sitk.sitkFloat32: "float32", sitk.sitkInt16: "int16"}


class CheckError(Exception):
    """The input folder itself is not a usable grand-challenge case (not an output failure)."""


def _one_file(folder: Path) -> Path:
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else []
    if len(files) != 1:
        raise CheckError(f"{folder}: expected exactly one file, found {len(files)}")
    return files[0]


def input_files(input_root: Path) -> tuple[Path, Path]:
    """The input image (images/mri or images/cbct) and body mask of a grand-challenge input folder."""
    present = [input_root / d for d in IMAGE_DIRS if (input_root / d).is_dir()]
    if len(present) != 1:
        raise CheckError(f"{input_root}: expected exactly one of {IMAGE_DIRS}, found {len(present)}")
    return _one_file(present[0]), _one_file(input_root / MASK_DIR)


def expected_name(image_path: Path) -> str:
    """Output file name the algorithm must use: the input's name with a .mha suffix."""
    name = image_path.name
    for suffix in (".mha", ".nii.gz", ".nii", ".nrrd"):
        if name.endswith(suffix):
            return name[: -len(suffix)] + ".mha"
    return name + ".mha"


def geometry(image: sitk.Image) -> dict[str, list[float] | list[int]]:
    return {"size": list(image.GetSize()), "spacing": list(image.GetSpacing()), "origin": list(image.GetOrigin()),
            "direction": list(image.GetDirection())}


def body_summary(hu: np.ndarray, body: np.ndarray) -> dict[str, float | int]:
    """HU statistics inside the body mask (float64 arithmetic, rounded to 1e-3 HU)."""
    values = hu[body].astype(np.float64)
    summary: dict[str, float | int] = {"voxels": int(values.size)}
    if values.size == 0:
        return summary
    summary.update(mean=float(values.mean()), std=float(values.std()), min=float(values.min()),
                   max=float(values.max()))
    for p, v in zip(PERCENTILES, np.percentile(values, PERCENTILES), strict=True):
        summary[f"p{p}"] = float(v)
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in summary.items()}


def _check_geometry(out: sitk.Image, ref: sitk.Image) -> list[str]:
    problems = []
    if out.GetSize() != ref.GetSize():
        problems.append(f"size {out.GetSize()} differs from the input's {ref.GetSize()}")
    for name, a, b in (("spacing", out.GetSpacing(), ref.GetSpacing()), ("origin", out.GetOrigin(), ref.GetOrigin()),
                       ("direction", out.GetDirection(), ref.GetDirection())):
        if not np.allclose(a, b, rtol=0, atol=GEOMETRY_TOL):
            problems.append(f"{name} {tuple(a)} differs from the input's {tuple(b)}")
    return problems


def inspect_output(input_root: Path, output_root: Path) -> tuple[list[str], dict[str, Any] | None]:
    """Checks 1-4. Returns (failures, summary of the output or None when it could not be read)."""
    image_path, mask_path = input_files(input_root)
    want = output_root / OUTPUT_DIR / expected_name(image_path)
    found = sorted(p for p in output_root.rglob("*") if p.is_file()) if output_root.is_dir() else []
    if found != [want]:
        shown = ", ".join(str(p.relative_to(output_root)) for p in found) or "nothing"
        return [f"{output_root}: expected exactly {want.relative_to(output_root)}, found {shown}"], None
    try:
        out = sitk.ReadImage(str(want))
    except RuntimeError as exc:
        return [f"{want}: unreadable ({str(exc).strip().splitlines()[-1]})"], None
    ref, mask = sitk.ReadImage(str(image_path)), sitk.ReadImage(str(mask_path))
    problems = [f"{want}: {p}" for p in _check_geometry(out, ref)]
    if out.GetPixelID() not in ALLOWED_PIXEL_TYPES or out.GetNumberOfComponentsPerPixel() != 1:
        problems.append(f"{want}: voxel type {out.GetPixelIDTypeAsString()}, expected float32 or int16")
    if problems:
        return problems, None
    hu = sitk.GetArrayFromImage(out)
    body = sitk.GetArrayFromImage(mask) > 0
    finite = np.isfinite(hu)
    if not finite.all():
        problems.append(f"{want}: {int((~finite).sum())} voxels are NaN or infinite")
    else:
        lo, hi = float(hu.min()), float(hu.max())
        if lo < HU_RANGE[0] or hi > HU_RANGE[1]:
            problems.append(f"{want}: HU range [{lo:.1f}, {hi:.1f}] exceeds {list(HU_RANGE)}")
    outside = hu[~body]
    not_air = int(np.count_nonzero(outside != AIR_HU))
    if not_air:
        problems.append(f"{want}: {not_air} of {outside.size} voxels outside the body mask are not {AIR_HU} HU")
    summary = {"output": {"path": f"{OUTPUT_DIR}/{want.name}", **geometry(out),
                          "dtype": ALLOWED_PIXEL_TYPES[out.GetPixelID()]},
               "body": body_summary(hu, body)}
    return problems, summary


def compare_summary(summary: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """Check 5: the body summary against the reference, within ``expected["tolerance_hu"]``."""
    tol = float(expected.get("tolerance_hu", DEFAULT_TOLERANCE_HU))
    problems = []
    if summary["output"]["path"] != expected["output"]["path"]:
        problems.append(f"output {summary['output']['path']} differs from the reference {expected['output']['path']}")
    got, want = summary["body"], expected["body"]
    for key, ref in want.items():
        if key not in got:
            problems.append(f"body {key}: missing (reference {ref})")
        elif key == "voxels":
            if got[key] != ref:
                problems.append(f"body voxel count {got[key]} differs from the reference {ref}")
        elif abs(got[key] - ref) > tol:
            problems.append(f"body {key} = {got[key]:.3f} HU, reference {ref:.3f} HU (tolerance {tol} HU)")
    return problems


def check(input_root: Path, output_root: Path, expected_path: Path | None) -> list[str]:
    """All checks; an empty list means the output passes."""
    problems, summary = inspect_output(input_root, output_root)
    if problems or summary is None or expected_path is None:
        return problems
    return compare_summary(summary, json.loads(expected_path.read_text()))


def write_reference(input_root: Path, output_root: Path, expected_path: Path, note: dict[str, Any],
                    tolerance_hu: float = DEFAULT_TOLERANCE_HU) -> dict[str, Any]:
    """Store the summary of a passing output as the reference (``note`` says what produced it)."""
    problems, summary = inspect_output(input_root, output_root)
    if problems or summary is None:
        raise CheckError("; ".join(problems) or "no summary")
    reference = {**note, "hu_range": list(HU_RANGE), "air_hu": AIR_HU, "tolerance_hu": tolerance_hu, **summary}
    expected_path.write_text(json.dumps(reference, indent=2) + "\n")
    return reference


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, required=True, help="grand-challenge input folder (mounted at /input)")
    parser.add_argument("--output", type=Path, required=True, help="output folder the algorithm wrote (/output)")
    parser.add_argument("--expected", type=Path, default=None, help="reference summary (expected_output.json)")
    args = parser.parse_args(argv)
    try:
        problems, summary = inspect_output(args.input, args.output)
        if not problems and summary is not None and args.expected is not None:
            problems = compare_summary(summary, json.loads(args.expected.read_text()))
    except CheckError as exc:
        print(f"FAIL {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    if problems or summary is None:
        return 1
    out, body = summary["output"], summary["body"]
    print(f"OK {args.output}/{out['path']}: size {out['size']} {out['dtype']}, {body['voxels']} body voxels, "
          f"mean {body.get('mean')} HU, p1..p99 [{body.get('p1')}, {body.get('p99')}] HU"
          + (f", matches {args.expected}" if args.expected else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
