#!/usr/bin/env python
"""Build the grand-challenge sample cases in ``test/`` and the random-weight models of the container smoke test.

Run from the repository root::

    python scripts/make_test_cases.py cases        # test/{mri,cbct}/input from samples/ (committed; deterministic)
    python scripts/make_test_cases.py models DIR   # DIR/weights/<task>/smoke-random + DIR/resources/models.json
    python scripts/make_test_cases.py reference    # run process.py in-process on both cases with those models and
                                                   # write test/{mri,cbct}/expected_output.json

Each ``test/<task>/input`` folder is laid out like grand-challenge's ``/input`` (``challenge.md`` §3):
``images/<mri|cbct>/<uuid>.mha``, ``images/body/<uuid>.mha`` and ``region.json``. As on grand-challenge, the image
and the mask carry different random-looking names (fixed UUIDs here, so the folders are reproducible).

**Task 1 (MRI)**, from the real porcine T2 MR and its body mask in ``samples/porcine`` (MRI-DIR, CC BY 4.0): axial
slices z = 8..31 of the 40-slice sample, unchanged otherwise (147 x 186 x 24 voxels, 1 x 1 x 2.5 mm, int16 MR,
uint8 mask). The tissue block is not human anatomy; like ``synthct demo`` the case is labelled "Head and Neck".

**Task 2 (CBCT)**, simulated from the real head-and-neck CT in ``samples/openkbp_hn`` (OpenKBP pt_2, MIT / TCIA),
which has no CBCT. Steps, all deterministic (fixed seed :data:`CBCT_SEED`):

1. crop to axial slices z = 24..47 (skull base, maxilla, mandible and upper cervical spine; 24 slices at 3 mm) and
   to the body mask's in-plane bounding box plus a 12 mm margin;
2. resample linearly to 2 x 2 x 3 mm (the source has 4.625 mm pixels: a finer grid, not finer detail); the mask is
   resampled with nearest neighbour. Origin and direction (diag(1, 1, -1)) come from the source;
3. convert to relative attenuation ``a = (HU + 1000) / 1000`` (water = 1) and apply, in this order:

   - **cupping**: ``a *= 1 - 0.06 (1 - (r/R)^2)`` inside the field of view (FOV), r = in-plane distance from the
     rotation axis (the image centre), R = FOV radius: the centre reads up to ~60 HU too low, as with scatter and
     beam hardening;
   - **low-frequency shading**: a smooth random field (white noise, Gaussian-filtered with sigma 24 mm in-plane and
     12 mm in z, scaled to a standard deviation of 0.025, i.e. ~25 HU in water);
   - **streaks**: in every slice with dense structures (HU > 1200, teeth and cortical bone), 6 thin lines at random
     angles through the densest voxel, alternating bright/dark, amplitude 0.06 (~60 HU) decaying with an 80 mm
     length scale;
   - **noise**: Gaussian, lightly correlated (sigma 0.7 voxel), standard deviation 0.02 (~20 HU);

4. back to CT-like units ``1000 a - 1000`` and apply a calibration drift ``0.94 x - 35`` (CBCT numbers are not HU);
5. **circular FOV** of radius 120 mm about the image centre in every slice: -1000 outside, as SynthRAD's released
   CBCTs (``challenge.md`` §4.6, §11.2 step 7); the body mask is multiplied by the FOV, as SynthRAD does;
6. clip to [-1024, 3071] (SynthRAD ``clip_data.py``), round to int16.

Provenance and licences of the sources are in ``test/README.md`` and the copied LICENSE files.

**Smoke-test models** (``models``): for each task one randomly initialised 3-stage residual U-Net (features 8-16-32,
patch 16 x 64 x 64, fixed seed) at the spacing of its test case, exported with ``synthct.network.export`` to
``weights/<task>/smoke-random``, and a ``resources/models.json`` routing every region of that task to it. They
produce a deterministic CPU output, so ``expected_output.json`` can hold a reference summary with a tight
tolerance. **They are not synthetic-CT models**: the container built with them is a plumbing test.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_output  # noqa: E402  (the sibling script)

LOG = logging.getLogger("make_test_cases")
REGION = "Head and Neck"
TASKS = ("mri", "cbct")

#: Task 1: axial slices of samples/porcine kept in the case (half-open).
MRI_Z = (8, 32)
#: Task 2: axial slices of samples/openkbp_hn kept (half-open), in-plane margin and output spacing (x, y, z) mm.
CBCT_Z = (24, 48)
CBCT_MARGIN_MM = 12.0
CBCT_SPACING = (2.0, 2.0, 3.0)
CBCT_SEED = 20250601
CBCT_FOV_RADIUS_MM = 120.0
CUPPING = 0.06
SHADING_STD = 0.025
SHADING_SIGMA_MM = (12.0, 24.0, 24.0)  # (z, y, x)
STREAK_THRESHOLD_HU = 1200.0
STREAK_LINES = 6
STREAK_AMPLITUDE = 0.06
STREAK_WIDTH_MM = 2.0
STREAK_DECAY_MM = 80.0
NOISE_STD = 0.02
NOISE_SIGMA_VOXELS = 0.7
CALIBRATION = (0.94, -35.0)  # gain, offset
HU_CLIP = (-1024.0, 3071.0)

#: Smoke-test model settings per task: spacing (z, y, x) mm equals the test case's, so no resampling happens.
SMOKE_MODELS = {
    "mri": {"spacing": (2.5, 1.0, 1.0), "seed": 1},
    "cbct": {"spacing": (3.0, 2.0, 2.0), "seed": 2},
}
#: Target normalisation of the smoke models (HU = 150 z): keeps a random network's output mostly inside
#: [-1024, 3071], so the reference percentiles are not stuck at the clip limits.
SMOKE_TARGET = (0.0, 150.0)
SMOKE_FEATURES = (8, 16, 32)
SMOKE_PATCH = (16, 64, 64)
SMOKE_MODEL_DIR = "smoke-random"
SMOKE_NOTE = ("RANDOM WEIGHTS: container smoke-test model from scripts/make_test_cases.py; checks plumbing, "
              "it is not a synthetic-CT model")


def case_uuid(task: str, role: str) -> str:
    """Fixed, random-looking file name (UUID 5) of one input file."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://github.com/synthct/test/{task}/{role}"))


def _write(image: sitk.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=True)
    LOG.info("wrote %s (%s, %d bytes)", path, image.GetSize(), path.stat().st_size)


def _write_case(out: Path, task: str, image: sitk.Image, mask: sitk.Image) -> Path:
    root = out / task / "input"
    if root.exists():
        shutil.rmtree(root)
    _write(image, root / "images" / task / f"{case_uuid(task, 'image')}.mha")
    _write(mask, root / "images" / "body" / f"{case_uuid(task, 'body')}.mha")
    (root / "region.json").write_text(json.dumps(REGION) + "\n")
    return root


def mri_case(samples: Path) -> tuple[sitk.Image, sitk.Image]:
    """Task 1: the porcine MR and mask, axial slices :data:`MRI_Z`."""
    z0, z1 = MRI_Z
    mr = sitk.ReadImage(str(samples / "porcine" / "mr.mha"))[:, :, z0:z1]
    mask = sitk.ReadImage(str(samples / "porcine" / "mask.mha"))[:, :, z0:z1]
    return mr, sitk.Cast(mask, sitk.sitkUInt8)


def _crop_and_resample(ct: sitk.Image, mask: sitk.Image) -> tuple[sitk.Image, sitk.Image]:
    """Steps 1-2: crop to :data:`CBCT_Z` and the mask's bounding box + margin; resample to :data:`CBCT_SPACING`."""
    z0, z1 = CBCT_Z
    ct, mask = ct[:, :, z0:z1], mask[:, :, z0:z1]
    m = sitk.GetArrayFromImage(mask) > 0
    sx, sy, _ = ct.GetSpacing()
    ys, xs = np.where(m.any(axis=0))
    pad_x, pad_y = round(CBCT_MARGIN_MM / sx), round(CBCT_MARGIN_MM / sy)
    x0, x1 = max(int(xs.min()) - pad_x, 0), min(int(xs.max()) + 1 + pad_x, ct.GetSize()[0])
    y0, y1 = max(int(ys.min()) - pad_y, 0), min(int(ys.max()) + 1 + pad_y, ct.GetSize()[1])
    ct, mask = ct[x0:x1, y0:y1, :], mask[x0:x1, y0:y1, :]
    # New grid: same origin corner (voxel edge) and direction, CBCT_SPACING, covering the cropped extent.
    old_spacing = np.array(ct.GetSpacing())
    new_spacing = np.array(CBCT_SPACING)
    extent = np.array(ct.GetSize()) * old_spacing
    size = [int(n) for n in np.floor(extent / new_spacing + 1e-6)]
    direction = np.array(ct.GetDirection()).reshape(3, 3)
    corner = np.array(ct.GetOrigin()) - direction @ (old_spacing / 2)
    origin = corner + direction @ (new_spacing / 2)
    ref = sitk.Image(size, sitk.sitkFloat32)
    ref.SetSpacing(tuple(float(s) for s in new_spacing))
    ref.SetOrigin(tuple(float(o) for o in origin))
    ref.SetDirection(ct.GetDirection())
    ct_r = sitk.Resample(sitk.Cast(ct, sitk.sitkFloat32), ref, sitk.Transform(), sitk.sitkLinear, -1024.0)
    mask_r = sitk.Resample(mask, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return ct_r, mask_r


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma_vox: tuple[float, ...]) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_vox, mode="reflect")
    return (field - field.mean()) / field.std()


def _streaks(hu: np.ndarray, rng: np.random.Generator, spacing_zyx: tuple[float, float, float]) -> np.ndarray:
    """Relative-attenuation streak pattern (Z, Y, X): lines through the densest voxel of each dense slice."""
    _, sy, sx = spacing_zyx
    nz, ny, nx = hu.shape
    yy, xx = np.meshgrid(np.arange(ny) * sy, np.arange(nx) * sx, indexing="ij")
    out = np.zeros(hu.shape)
    angles = rng.uniform(0, np.pi, STREAK_LINES)  # one set of angles: streaks persist along z, as in a real scan
    signs = np.where(np.arange(STREAK_LINES) % 2 == 0, 1.0, -1.0)
    for z in range(nz):
        if hu[z].max() <= STREAK_THRESHOLD_HU:
            continue
        py, px = np.unravel_index(int(np.argmax(hu[z])), hu[z].shape)
        dy, dx = yy - py * sy, xx - px * sx
        fall_off = np.exp(-np.hypot(dy, dx) / STREAK_DECAY_MM)
        for angle, sign in zip(angles, signs, strict=True):
            distance = np.abs(dx * np.sin(angle) - dy * np.cos(angle))  # distance to the line, mm
            out[z] += sign * STREAK_AMPLITUDE * np.exp(-0.5 * (distance / STREAK_WIDTH_MM) ** 2) * fall_off
    return out


def simulate_cbct(ct: sitk.Image, mask: sitk.Image, seed: int = CBCT_SEED) -> tuple[sitk.Image, sitk.Image]:
    """Steps 3-6 of the module docstring on a CT already on the CBCT grid; returns (CBCT int16, mask uint8).

    ``seed`` draws the random parts (shading field, streak angles, noise); cupping, FOV and calibration are fixed.
    """
    rng = np.random.default_rng(seed)
    hu = sitk.GetArrayFromImage(ct).astype(np.float64)
    body = sitk.GetArrayFromImage(mask) > 0
    sx, sy, sz = ct.GetSpacing()
    nz, ny, nx = hu.shape
    # FOV: a cylinder about the image centre (the rotation axis).
    yy, xx = np.meshgrid((np.arange(ny) - (ny - 1) / 2) * sy, (np.arange(nx) - (nx - 1) / 2) * sx, indexing="ij")
    r = np.hypot(yy, xx)
    fov2d = r <= CBCT_FOV_RADIUS_MM
    atten = (hu + 1000.0) / 1000.0
    atten *= np.where(fov2d, 1.0 - CUPPING * (1.0 - (r / CBCT_FOV_RADIUS_MM) ** 2), 1.0)[None]
    sigma = tuple(s / d for s, d in zip(SHADING_SIGMA_MM, (sz, sy, sx), strict=True))
    atten += SHADING_STD * _smooth_field(rng, hu.shape, sigma)
    atten += _streaks(hu, rng, (sz, sy, sx))
    atten += NOISE_STD * _smooth_field(rng, hu.shape, (NOISE_SIGMA_VOXELS,) * 3)
    gain, offset = CALIBRATION
    cbct = gain * (1000.0 * atten - 1000.0) + offset
    fov = np.broadcast_to(fov2d, hu.shape)
    cbct[~fov] = -1000.0
    cbct = np.clip(np.rint(cbct), *HU_CLIP).astype(np.int16)
    body &= fov
    out = sitk.GetImageFromArray(cbct)
    out.CopyInformation(ct)
    out_mask = sitk.GetImageFromArray(body.astype(np.uint8))
    out_mask.CopyInformation(ct)
    return out, out_mask


def cbct_case(samples: Path) -> tuple[sitk.Image, sitk.Image]:
    """Task 2: a CBCT simulated from the OpenKBP head-and-neck CT, and its body mask."""
    ct = sitk.ReadImage(str(samples / "openkbp_hn" / "ct.nii.gz"))
    mask = sitk.ReadImage(str(samples / "openkbp_hn" / "mask.nii.gz"))
    return simulate_cbct(*_crop_and_resample(ct, mask))


#: Sample folder each case is derived from (its LICENSE files are copied next to the case).
SOURCES = {"mri": "porcine", "cbct": "openkbp_hn"}


def make_cases(samples: Path, out: Path) -> dict[str, Path]:
    """Write test/<task>/input for both tasks and copy the sources' licences; returns the input folders."""
    roots = {"mri": _write_case(out, "mri", *mri_case(samples)), "cbct": _write_case(out, "cbct", *cbct_case(samples))}
    for task, source in SOURCES.items():
        for lic in sorted((samples / source).glob("LICENSE*")):
            shutil.copyfile(lic, out / task / lic.name)
    return roots


def write_smoke_models(app_root: Path) -> Path:
    """Random-weight model folders ``app_root/weights/<task>/smoke-random`` and ``app_root/resources/models.json``.

    Returns the models.json path. Deterministic: the same seed gives the same weights on any CPU.
    """
    from synthct.network.export import export_model
    from synthct.network.scaffold import random_training_results
    from synthct.preprocessing.normalization import TargetNormalization

    routing: dict[str, object] = {"version": 1, "models": {}}
    with tempfile.TemporaryDirectory(prefix="synthct-smoke-") as tmp:
        for task in TASKS:
            spec = SMOKE_MODELS[task]
            results = random_training_results(Path(tmp) / task, task=task, features=SMOKE_FEATURES,
                                              patch_size=SMOKE_PATCH, spacing=spec["spacing"], seed=spec["seed"],
                                              target_normalization=TargetNormalization(*SMOKE_TARGET),
                                              description=SMOKE_NOTE)
            model = export_model(results, app_root / "weights" / task / SMOKE_MODEL_DIR, overwrite=True)
            entry = {"model": os.path.relpath(model, app_root), "folds": [0], "step": 0.5, "blend": "mean",
                     "tta": False, "note": SMOKE_NOTE}
            routing["models"][task] = dict.fromkeys(("HN", "TH", "AB"), entry)  # type: ignore[index]
            LOG.info("wrote %s", model)
    path = app_root / "resources" / "models.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(routing, indent=2) + "\n")
    return path


def make_reference(test_dir: Path) -> None:
    """Run the algorithm in-process (CPU) on both cases with the smoke models; store the reference summaries."""
    import torch

    from synthct.challenge.algorithm import main as run_algorithm

    with tempfile.TemporaryDirectory(prefix="synthct-reference-") as tmp:
        app = Path(tmp) / "app"
        write_smoke_models(app)
        for task in TASKS:
            out = Path(tmp) / "out" / task
            code = run_algorithm(["--input", str(test_dir / task / "input"), "--output", str(out), "--device", "cpu"],
                                 app_root=app)
            if code != 0:
                raise SystemExit(f"process.py failed on {test_dir / task / 'input'} (exit code {code})")
            note = {"description": f"Reference summary of the Task {TASKS.index(task) + 1} ({task}) container "
                                   "smoke test: output of the RANDOM-WEIGHT smoke model, CPU float32. Checks the "
                                   "plumbing (geometry, HU range, air outside the mask, determinism), not sCT quality.",
                    "generated_by": "python scripts/make_test_cases.py reference",
                    "models": f"scripts/make_test_cases.py models: weights/{task}/{SMOKE_MODEL_DIR}",
                    "torch": torch.__version__}
            ref = check_output.write_reference(test_dir / task / "input", out, test_dir / task / "expected_output.json",
                                               note)
            LOG.info("%s: %s", task, ref["body"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("cases", help="write test/{mri,cbct}/input from samples/")
    p.add_argument("--samples", type=Path, default=REPO / "samples")
    p.add_argument("--out", type=Path, default=REPO / "test")
    p = sub.add_parser("models", help="write random-weight smoke models + resources/models.json under APP_ROOT")
    p.add_argument("app_root", type=Path)
    p = sub.add_parser("reference", help="write test/<task>/expected_output.json from an in-process CPU run")
    p.add_argument("--test", type=Path, default=REPO / "test")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("synthct").setLevel(logging.WARNING)
    if args.command == "cases":
        make_cases(args.samples, args.out)
    elif args.command == "models":
        print(write_smoke_models(args.app_root))
    else:
        make_reference(args.test)
    return 0


if __name__ == "__main__":
    sys.exit(main())
