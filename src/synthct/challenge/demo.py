"""The main job on a bundled sample: build a grand-challenge input folder from ``samples/`` and run it.

Task 1 (``mri``, the default of ``make demo``): the real porcine MR of ``samples/porcine``. Task 2 (``cbct``): the
REAL CBCT of ``samples/pancreas_cbct``, axial slices 0..13 only — the slab the bundled Task 2 demo model never trained
on (the same slab as ``test/cbct``).

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

import SimpleITK as sitk

from synthct.challenge.algorithm import run_case
from synthct.challenge.contract import MASK_DIR, REGION_FILE
from synthct.challenge.errors import CaseError
from synthct.challenge.routing import resolve_route
from synthct.challenge.routing_edit import is_demo
from synthct.contracts import synthrad
from synthct.io.image import read_image
from synthct.network.manifest import read_manifest

LOG = logging.getLogger(__name__)
SAMPLE_UUID = "00000000-0000-4000-8000-000000000001"


@dataclass(frozen=True)
class DemoCase:
    """One bundled demo case: sample folder, input file name, region string, axial slices kept (half-open)."""

    sample: str
    image: str
    region: str
    slices: tuple[int, int] | None = None


#: The porcine sample is no human region; the demo routes it as head and neck. The CBCT demo keeps the held-out slab.
DEMO_CASES = {"mri": DemoCase("porcine", "mr.mha", "Head and Neck"),
              "cbct": DemoCase("pancreas_cbct", "cbct.mha", "Abdomen", (0, 14))}


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
    model_dir: Path | None = None
    demo_model: bool = False

    @property
    def model_label(self) -> str:
        """Which model ran: its folder and whether it is the bundled demo, a random-weight or a user's model."""
        if self.random_weights:
            return "RANDOM-WEIGHT demo model (pipeline check, not a real sCT)"
        kind = ("a DEMO model by its synthct.json" if self.demo_model
                else "routed in resources/models.json, NOT a demo model: the README's demo scores do not apply")
        return f"{self.model_dir} ({kind})"


def _read_slab(path: Path, slices: tuple[int, int] | None) -> sitk.Image:
    image = sitk.ReadImage(str(path))
    return image if slices is None else image[:, :, slices[0]:slices[1]]


def make_gc_input(sample_dir: Path, input_root: Path, task: str = "mri", region: str = DEMO_CASES["mri"].region,
                  slices: tuple[int, int] | None = None) -> Path:
    """A grand-challenge input folder (images/<task>/, images/body/, region.json) from a sample folder."""
    image_name = f"{synthrad.get_task(task).input_stem}.mha"
    if input_root.exists():
        shutil.rmtree(input_root)
    (input_root / synthrad.get_task(task).input_dir).mkdir(parents=True)
    (input_root / MASK_DIR).mkdir(parents=True)
    for src, dst in ((sample_dir / image_name, input_root / synthrad.get_task(task).input_dir / f"{SAMPLE_UUID}.mha"),
                     (sample_dir / "mask.mha", input_root / MASK_DIR / f"{SAMPLE_UUID}.mha")):
        sitk.WriteImage(_read_slab(src, slices), str(dst), useCompression=True)
    (input_root / REGION_FILE).write_text(json.dumps(region))
    return input_root


def random_demo_models(work: Path, spacing_zyx: tuple[float, float, float], task: str = "mri") -> Path:
    """Create a random-weight model folder under ``work`` and a models.json routing every region of ``task`` to it."""
    from synthct.network.export import export_model
    from synthct.network.scaffold import random_training_results

    results = random_training_results(work / "training-results-random", task=task, features=(8, 16, 32, 64),
                                      patch_size=(24, 96, 96), spacing=spacing_zyx)
    export_model(results, work / "model-random", overwrite=True)
    entry = {"model": "model-random", "step": 0.3, "blend": "mean",
             "note": "RANDOM WEIGHTS: plumbing demo only, not a synthetic-CT model"}
    routing = {"version": 1, "models": {task: dict.fromkeys(synthrad.region_codes(), entry)}}
    path = work / "resources" / "models.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(routing, indent=2))
    return path


def run_demo(repo_root: Path, out: Path, device: str = "auto", task: str = "mri") -> DemoResult:
    """Run the grand-challenge algorithm on the bundled sample of ``task``; outputs go under ``out``."""
    if task not in DEMO_CASES:
        raise ValueError(f"demo task must be one of {sorted(DEMO_CASES)}, got {task!r}")
    case = DEMO_CASES[task]
    sample = repo_root / "samples" / case.sample
    input_root = make_gc_input(sample, out / "input", task, case.region, case.slices)
    models = repo_root / "resources" / "models.json"
    model_dir: Path | None = None
    try:
        model_dir = resolve_route(models, task, synthrad.region_names()[case.region]).model_dir
        random_weights = False
    except CaseError as exc:
        LOG.warning("no trained weights bundled (%s)", exc)
        LOG.warning("DEMO USES A RANDOMLY INITIALISED NETWORK: the output checks the pipeline, it is NOT a real sCT")
        _, geometry, _ = read_image(sample / case.image)
        models = random_demo_models(out, geometry.spacing_zyx, task)
        random_weights = True
    output_root = out / "output"
    if output_root.exists():
        shutil.rmtree(output_root)
    path = run_case(input_root, output_root, models, device)
    return _summarise(path, sample, out, random_weights, case, model_dir)


def _summarise(sct_path: Path, sample: Path, out: Path, random_weights: bool, case: DemoCase,
               model_dir: Path | None) -> DemoResult:
    """Score the sCT against the sample's real CT inside the body mask and write ``out/preview.png``."""
    from synthct.metrics import image_metrics
    from synthct.metrics.report import save_montage

    sct, geometry, _ = read_image(sct_path)
    ct, mask, image = (sitk.GetArrayFromImage(_read_slab(sample / name, case.slices))
                       for name in ("ct.mha", "mask.mha", case.image))
    scores = image_metrics(ct, sct, mask=mask > 0)
    demo_model = model_dir is not None and is_demo(read_manifest(model_dir).description)
    label = ("RANDOM WEIGHTS (pipeline check)" if random_weights
             else "bundled demo weights" if demo_model else f"model {model_dir.name if model_dir else '?'}")
    title = (f"synthct demo, {case.sample} sample, {label}: MAE {scores['mae']:.1f} HU, PSNR {scores['psnr']:.2f} dB, "
             f"MS-SSIM {scores['ms_ssim']:.3f}")
    preview = save_montage(out / "preview.png", ct=ct, sct=sct, spacing_zyx=geometry.spacing_zyx, mask=mask,
                           input_image=image, title=title)
    return DemoResult(sct_path, preview, random_weights, float(sct.min()), float(sct.max()), scores["mae"],
                      scores["psnr"], scores["ms_ssim"], model_dir, demo_model)
