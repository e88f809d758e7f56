"""The main job on the bundled sample: build a grand-challenge input folder from ``samples/porcine`` and run it.

With trained weights in ``weights/`` (routed by ``resources/models.json``) the demo uses them. Without them it creates
a small **randomly initialised** model folder first and says so loudly: the output then shows that the pipeline
works (geometry, HU range, air outside the body), not what a trained model produces.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from synthct.challenge.algorithm import run_case
from synthct.challenge.contract import INPUT_IMAGE_DIRS, MASK_DIR, REGION_FILE
from synthct.challenge.errors import CaseError
from synthct.challenge.routing import resolve_route
from synthct.io.image import read_image

LOG = logging.getLogger(__name__)
SAMPLE_UUID = "00000000-0000-4000-8000-000000000001"
#: The porcine sample is no human region; the demo routes it as head and neck.
DEMO_REGION = "Head and Neck"


@dataclass(frozen=True)
class DemoResult:
    """What the demo wrote and measured: the sCT, its PNG preview, and metrics against the sample's real CT."""

    output: Path
    preview: Path
    random_weights: bool
    hu_min: float
    hu_max: float
    mae: float
    psnr: float
    ms_ssim: float


def make_gc_input(sample_dir: Path, input_root: Path, task: str = "mri") -> Path:
    """A grand-challenge input folder (images/<task>/, images/body/, region.json) from a sample folder."""
    image_name = {"mri": "mr.mha", "cbct": "cbct.mha"}[task]
    if input_root.exists():
        shutil.rmtree(input_root)
    (input_root / INPUT_IMAGE_DIRS[task]).mkdir(parents=True)
    (input_root / MASK_DIR).mkdir(parents=True)
    shutil.copyfile(sample_dir / image_name, input_root / INPUT_IMAGE_DIRS[task] / f"{SAMPLE_UUID}.mha")
    shutil.copyfile(sample_dir / "mask.mha", input_root / MASK_DIR / f"{SAMPLE_UUID}.mha")
    (input_root / REGION_FILE).write_text(json.dumps(DEMO_REGION))
    return input_root


def random_demo_models(work: Path, spacing_zyx: tuple[float, float, float]) -> Path:
    """Create a random-weight model folder under ``work`` and a models.json routing every MRI region to it."""
    from synthct.network.export import export_model
    from synthct.network.scaffold import random_training_results

    results = random_training_results(work / "training-results-random", task="mri", features=(8, 16, 32, 64),
                                      patch_size=(24, 96, 96), spacing=spacing_zyx)
    export_model(results, work / "model-random", overwrite=True)
    entry = {"model": "model-random", "step": 0.3, "blend": "mean",
             "note": "RANDOM WEIGHTS: plumbing demo only, not a synthetic-CT model"}
    routing = {"version": 1, "models": {"mri": {r: entry for r in ("HN", "TH", "AB")}}}
    path = work / "resources" / "models.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(routing, indent=2))
    return path


def run_demo(repo_root: Path, out: Path, device: str = "auto") -> DemoResult:
    """Run the grand-challenge algorithm on the bundled porcine MR sample; outputs go under ``out``."""
    sample = repo_root / "samples" / "porcine"
    input_root = make_gc_input(sample, out / "input")
    models = repo_root / "resources" / "models.json"
    try:
        resolve_route(models, "mri", "HN")
        random_weights = False
    except CaseError as exc:
        LOG.warning("no trained weights bundled (%s)", exc)
        LOG.warning("DEMO USES A RANDOMLY INITIALISED NETWORK: the output checks the pipeline, it is NOT a real sCT")
        _, geometry, _ = read_image(sample / "mr.mha")
        models = random_demo_models(out, geometry.spacing_zyx)
        random_weights = True
    output_root = out / "output"
    if output_root.exists():
        shutil.rmtree(output_root)
    path = run_case(input_root, output_root, models, device)
    return _summarise(path, sample, out, random_weights)


def _summarise(sct_path: Path, sample: Path, out: Path, random_weights: bool) -> DemoResult:
    """Score the sCT against the sample's real CT inside the body mask and write ``out/preview.png``."""
    from synthct.metrics import image_metrics
    from synthct.metrics.report import save_montage

    sct, geometry, _ = read_image(sct_path)
    ct, _, _ = read_image(sample / "ct.mha")
    mask, _, _ = read_image(sample / "mask.mha")
    mr, _, _ = read_image(sample / "mr.mha")
    scores = image_metrics(ct, sct, mask=mask > 0)
    label = "RANDOM WEIGHTS (pipeline check)" if random_weights else "bundled weights"
    title = (f"synthct demo, porcine sample, {label}: MAE {scores['mae']:.1f} HU, PSNR {scores['psnr']:.2f} dB, "
             f"MS-SSIM {scores['ms_ssim']:.3f}")
    preview = save_montage(out / "preview.png", ct=ct, sct=sct, spacing_zyx=geometry.spacing_zyx, mask=mask,
                           input_image=mr, title=title)
    return DemoResult(sct_path, preview, random_weights, float(sct.min()), float(sct.max()), scores["mae"],
                      scores["psnr"], scores["ms_ssim"])
