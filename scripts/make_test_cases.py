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

**Task 2 (CBCT)**, a REAL CBCT: axial slices :data:`CBCT_Z` of ``samples/pancreas_cbct`` (TCIA
Pancreatic-CT-CBCT-SEG, CC BY 4.0; made by ``scripts/make_samples.py`` the way the SynthRAD2025 release is made:
CT grid, circular FOV from the radial profile, -1000 outside it, clipped to [-1024, 3071], SynthRAD-style body
outline ∩ FOV), i.e. 243 x 244 x 14 voxels at 1.074 x 1.074 x 3 mm, int16 CBCT, uint8 mask, region "Abdomen".
These slices are the Task 2 demo model's held-out slab (``scripts/make_demo_weights.py``): it never trained on them.
The simulated head-and-neck CBCT that stood here until 2026-12 is gone: its coverage (a flipped direction matrix,
a 2 mm grid) is in the process.py tests, and CBCT simulation lives, calibrated, in ``scripts/cbct_simulation.py``.

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

import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_output  # noqa: E402  (the sibling script)

LOG = logging.getLogger("make_test_cases")
TASKS = ("mri", "cbct")

#: Task 1: axial slices of samples/porcine kept in the case (half-open).
MRI_Z = (8, 32)
#: Task 2: axial slices of samples/pancreas_cbct kept (half-open): the demo model's held-out slab.
CBCT_Z = (0, 14)
#: region.json per task.
REGIONS = {"mri": "Head and Neck", "cbct": "Abdomen"}

#: Smoke-test model settings per task: spacing (z, y, x) mm equals the test case's, so no resampling happens.
SMOKE_MODELS = {
    "mri": {"spacing": (2.5, 1.0, 1.0), "seed": 1},
    "cbct": {"spacing": (3.0, 1.07421875, 1.07421875), "seed": 2},
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
    (root / "region.json").write_text(json.dumps(REGIONS[task]) + "\n")
    return root


def mri_case(samples: Path) -> tuple[sitk.Image, sitk.Image]:
    """Task 1: the porcine MR and mask, axial slices :data:`MRI_Z`."""
    z0, z1 = MRI_Z
    mr = sitk.ReadImage(str(samples / "porcine" / "mr.mha"))[:, :, z0:z1]
    mask = sitk.ReadImage(str(samples / "porcine" / "mask.mha"))[:, :, z0:z1]
    return mr, sitk.Cast(mask, sitk.sitkUInt8)


def cbct_case(samples: Path) -> tuple[sitk.Image, sitk.Image]:
    """Task 2: the real CBCT of ``samples/pancreas_cbct``, axial slices :data:`CBCT_Z`, and its body mask."""
    z0, z1 = CBCT_Z
    cbct = sitk.ReadImage(str(samples / "pancreas_cbct" / "cbct.mha"))[:, :, z0:z1]
    mask = sitk.ReadImage(str(samples / "pancreas_cbct" / "mask.mha"))[:, :, z0:z1]
    return cbct, sitk.Cast(mask, sitk.sitkUInt8)


#: Sample folder each case is derived from (its LICENSE files are copied next to the case).
SOURCES = {"mri": "porcine", "cbct": "pancreas_cbct"}


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
    from synthct.contracts import synthrad
    from synthct.contracts.normalization import TargetNormalization
    from synthct.network.export import export_model
    from synthct.network.scaffold import random_training_results

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
            routing["models"][task] = dict.fromkeys(synthrad.region_codes(), entry)  # type: ignore[index]
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
