#!/usr/bin/env python
"""Reproduce the bundled DEMO weights (weights/mri/porcine-demo, weights/cbct/pancreas-demo) from scratch.

    python scripts/make_demo_weights.py ../shared/data                      # both tasks, defaults of TRAINING
    python scripts/make_demo_weights.py ../shared/data --tasks cbct --epochs 20
    python scripts/make_demo_weights.py ../shared/data --evaluate-only      # re-evaluate the bundled weights
    python scripts/make_demo_weights.py ../shared/data --tasks cbct --augmentation cbct-drift \
        --init weights/cbct/pancreas-demo/fold_all/model.safetensors --out build/drift-candidate --resume
        # fine-tune the bundled Task 2 model with the drift preset into a candidate folder (resumable)

The demo weights are trained with synthct's own pipeline (``synthct convert → plan → preprocess → train → export``)
on the small real volumes of the project's data folder. They are NOT SynthRAD2025 models: they exist so that the
container and ``make demo`` produce a real (if modest) synthetic CT out of the box. Held-out data are never trained on.

* **Task 1 (MRI → CT)**: the real paired porcine MR/CT (MRI-DIR phantom, ``mridir-porcine-ct-mr``). Training cases:
  axial slabs z = 0..27 and 68..94. Held out: z = 28..67, exactly the slab committed as ``samples/porcine`` (the
  ``make demo`` case; ``test/mri`` lies inside it). **The bundled Task 1 model now comes from
  ``scripts/afp_experiment.py --ship``** (a longer base model + the fine-tune arm its rule picks); ``--tasks mri``
  here retrains the earlier short recipe (:data:`TRAINING`) and would replace it. ``--tasks mri --evaluate-only``
  re-scores the bundled model (with its routed blending, :data:`BLEND`).
* **Task 2 (CBCT → CT)**: one patient's REAL CBCT + planning CT (``samples/pancreas_cbct``, TCIA
  Pancreatic-CT-CBCT-SEG, made by ``scripts/make_samples.py``). Held out: axial slices 0..13 (= ``test/cbct``, the
  ``synthct demo --task cbct`` case). Training: slices 14..42 (resampled to 2 x 2 x 3 mm, entered
  :data:`CBCT_REAL_COPIES` times so that uniform case sampling draws real CBCT about as often as simulated) plus CBCTs
  simulated with the simulator of ``scripts/cbct_simulation.py``, calibrated against that real CBCT's training slab,
  from the real CTs of :data:`CBCT_SIMULATED` (the same patient's CT above the CBCT's z range only, TotalSegmentator
  abdomen and thorax, OpenKBP head and neck). The model differs from the MRI one in three documented ways
  (``TRAINING``): the affine input skip of ``synthct plan --input-skip`` (it starts as the identity in HU and learns
  the correction), AdamW at 1e-3 instead of SGD, and L1 inside the body only (outside the FOV the CBCT is empty).
  **The bundled Task 2 model is then fine-tuned** (issue 22) with the CBCT calibration-drift augmentation:
  ``--tasks cbct --augmentation cbct-drift --init weights/cbct/pancreas-demo/fold_all/model.safetensors --lr 5e-4
  --epochs 12 --out build/drift-candidate --resume`` (the first 3 of its epochs ran under a 25-epoch schedule before
  the run was resumed with 12, to finish in time), scored by ``benchmarks/cbct_drift.py`` and copied into
  ``weights/cbct/pancreas-demo`` because it beat all three baselines on the undrifted slab.

For each held-out set the script reports MAE / PSNR / MS-SSIM (the project's metrics, as the SynthRAD2025 evaluation)
of the demo model, of the identity baseline (input vs CT), of the best global linear intensity map (least squares
from the normalised input to HU, fitted on the training voxels inside the body) and of the oracle linear map fitted on
the held-out voxels themselves, and writes them to
``weights/DEMO_RESULTS.md`` and ``.json``. Both models route all three regions of their task
(``resources/models.json``); their ``synthct.json`` says what they were trained on.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from cbct_simulation import HELD_OUT_SLICES, simulate_cbct  # noqa: E402  (the calibrated CBCT simulation)

LOG = logging.getLogger("make_demo_weights")
PORCINE_TRAIN_SLABS = ((0, 28), (68, 95))
PORCINE_HELD_OUT = (28, 68)
CBCT_SPACING = (2.0, 2.0, 3.0)  # x, y, z mm: the demo model's grid (inputs are resampled to it and back)
#: The real pair (samples/pancreas_cbct, made by scripts/make_samples.py): slices HELD_OUT_SLICES are held out
#: (test/cbct, the Task 2 demo case); the rest is the real training slab, entered CBCT_REAL_COPIES times so that
#: uniform case sampling draws real CBCT about as often as simulated CBCT.
CBCT_REAL = REPO / "samples" / "pancreas_cbct"
CBCT_REAL_COPIES = 5
#: Real CTs simulated as CBCT with the calibrated simulator (seed per realisation) → (path, axial slices, seeds).
#: The planning CT of the same patient contributes only slices above the CBCT's z range (never the held-out slab).
CBCT_SIMULATED = (("pancreatic-ct-cbct-seg/ct_plan.nii.gz", (44, 79), (11, 12)),
                  ("totalsegmentator-examples/example_ct.nii.gz", None, (13,)),
                  ("openkbp-hn-ct/pt_4/ct.nii.gz", None, (14,)),
                  ("totalsegmentator-examples/pulmonary_report/ct_cropped.nii.gz", None, (15,)))
MODELS = {"mri": "porcine-demo", "cbct": "pancreas-demo"}
#: Tile blending each demo model is routed (and evaluated) with. MRI: Gaussian, measured by scripts/afp_experiment.py
#: on the held-out slab (tile seams 2.20 -> 0.90, MAE 77.6 -> 67.5 HU, PSNR +0.18 dB, MS-SSIM -0.016 vs mean
#: blending); CBCT: the paper's mean blending.
BLEND = {"mri": "gaussian", "cbct": "mean"}
#: Per-task training defaults. CBCT: L1 inside the body only (outside the circular FOV the simulated CBCT is empty
#: while the CT still shows anatomy, which no model can learn; the predictor writes -1000 outside the body anyway).
TRAINING = {"mri": {"epochs": 10, "iterations": 30, "background_weight": 1.0, "optimizer": "sgd", "lr": 1e-2},
            "cbct": {"epochs": 50, "iterations": 30, "background_weight": 0.0, "optimizer": "adamw", "lr": 1e-3}}
DESCRIPTIONS = {
    "mri": "DEMO weights, NOT a SynthRAD2025 model: small nnResU-Net trained by scripts/make_demo_weights.py on two "
           "axial slabs of one real porcine tissue phantom (MRI-DIR, T2 MR -> CT; not human anatomy). Serves HN, TH "
           "and AB only so that the pipeline runs out of the box.",
    "cbct": "DEMO weights, NOT a SynthRAD2025 model: small nnResU-Net with an affine input skip (synthct plan "
            "--input-skip) trained by scripts/make_demo_weights.py on ONE patient's real CBCT + planning CT "
            "(TCIA Pancreatic-CT-CBCT-SEG, rigid clinical alignment; 29 axial slices, the other 14 held out) and on "
            "CBCTs simulated with a simulator calibrated against that CBCT (docs/cbct-simulation.md) from 4 real "
            "CTs (the same patient's CT above the CBCT, TotalSegmentator abdomen and thorax, OpenKBP head and "
            "neck). Serves HN, TH and AB.",
}


def synthct(*args: str) -> None:
    cmd = [sys.executable, "-m", "synthct.cli.main", *args]
    LOG.info("$ synthct %s", " ".join(args))
    subprocess.run(cmd, check=True)


def body_mask(ct: sitk.Image) -> sitk.Image:
    """Body outline of a CT: > -400 HU, largest component, holes filled per slice, dilated by 3 voxels in-plane."""
    hu = sitk.GetArrayFromImage(ct)
    m = hu > -400
    labels, n = ndimage.label(m)
    if n:
        m = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    m = np.stack([ndimage.binary_fill_holes(s) for s in m])
    m = ndimage.binary_dilation(m, structure=np.ones((1, 7, 7), bool))
    out = sitk.GetImageFromArray(m.astype(np.uint8))
    out.CopyInformation(ct)
    return out


def resample(image: sitk.Image, spacing: tuple[float, float, float], interp: int, default: float) -> sitk.Image:
    size = [max(1, int(round(n * s / t))) for n, s, t in zip(image.GetSize(), image.GetSpacing(), spacing,
                                                                strict=True)]
    return sitk.Resample(image, size, sitk.Transform(), interp, image.GetOrigin(), spacing, image.GetDirection(),
                         default, image.GetPixelID())


def _oriented(image: sitk.Image) -> sitk.Image:
    """The image with identity direction (LPS), so that array rows run anterior → posterior as the simulator assumes."""
    return sitk.DICOMOrient(image, "LPS")


def cbct_pair(ct_path: Path, z_range: tuple[int, int] | None, seed: int) -> tuple[sitk.Image, sitk.Image, sitk.Image]:
    """(simulated CBCT, CT, mask) on the 2 x 2 x 3 mm grid from one real CT (clipped to [-1024, 3071]); ``seed``
    draws the simulation's random shading, streaks and noise; ``z_range`` keeps those axial slices (half-open)."""
    ct = _oriented(sitk.Clamp(sitk.Cast(sitk.ReadImage(str(ct_path)), sitk.sitkFloat32), sitk.sitkFloat32, -1024,
                              3071))
    if z_range is not None:
        ct = ct[:, :, z_range[0]:z_range[1]]
    ct = resample(ct, CBCT_SPACING, sitk.sitkLinear, -1024.0)
    mask = body_mask(ct)
    cbct, mask = simulate_cbct(ct, mask, seed)
    ct = sitk.Cast(sitk.Round(ct), sitk.sitkInt16)
    # The release sets the CT to -1000 outside the CBCT's FOV.
    ct = sitk.Mask(ct, sitk.Cast(cbct != -1000, sitk.sitkUInt8), -1000)
    return cbct, ct, mask


def real_cbct_slab(z_range: tuple[int, int], spacing: tuple[float, float, float] | None
                   ) -> tuple[sitk.Image, sitk.Image, sitk.Image]:
    """(CBCT, CT, mask) of the real pair, axial slices ``z_range``; resampled to ``spacing`` (x, y, z) if given."""
    images = [sitk.ReadImage(str(CBCT_REAL / f"{n}.mha"))[:, :, z_range[0]:z_range[1]] for n in ("cbct", "ct", "mask")]
    if spacing is None:
        return images[0], images[1], images[2]
    return (resample(images[0], spacing, sitk.sitkLinear, -1000.0), resample(images[1], spacing, sitk.sitkLinear,
            -1000.0), resample(images[2], spacing, sitk.sitkNearestNeighbor, 0))


def write_case(folder: Path, image_name: str, image: sitk.Image, ct: sitk.Image, mask: sitk.Image) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, im in ((image_name, image), ("ct.mha", ct), ("mask.mha", mask)):
        sitk.WriteImage(im, str(folder / name), useCompression=True)


def build_roots(data: Path, root: Path) -> dict[str, tuple[sitk.Image, sitk.Image, sitk.Image]]:
    """Miniature SynthRAD2025 training folders under ``root``; returns the held-out (input, CT, mask) per task."""
    porcine = data / "mridir-porcine-ct-mr"
    mr, ct, mask = (sitk.ReadImage(str(porcine / f"{n}.mha")) for n in ("mr", "ct", "mask"))
    for i, (z0, z1) in enumerate(PORCINE_TRAIN_SLABS, start=1):
        write_case(root / "Task1" / "HN" / f"1HNA{i:03d}", "mr.mha", mr[:, :, z0:z1], ct[:, :, z0:z1],
                   mask[:, :, z0:z1])
    real = real_cbct_slab((HELD_OUT_SLICES[1], sitk.ReadImage(str(CBCT_REAL / "ct.mha")).GetSize()[2]),
                          CBCT_SPACING)
    for i in range(1, CBCT_REAL_COPIES + 1):
        write_case(root / "Task2" / "AB" / f"2ABR{i:03d}", "cbct.mha", *real)
    for i, (rel, z_range, seed) in enumerate(((r, z, k) for r, z, seeds in CBCT_SIMULATED for k in seeds), start=1):
        write_case(root / "Task2" / "AB" / f"2ABS{i:03d}", "cbct.mha", *cbct_pair(data / rel, z_range, seed))
    z0, z1 = PORCINE_HELD_OUT
    return {"mri": (mr[:, :, z0:z1], ct[:, :, z0:z1], mask[:, :, z0:z1]), "cbct": real_cbct_slab(HELD_OUT_SLICES, None)}


def train_model(task: str, root: Path, work: Path, args: argparse.Namespace) -> Path:
    """convert → plan → preprocess → train (fold 'all') → export (fp16) for one task; returns the model folder."""
    number = {"mri": 1, "cbct": 2}[task]
    dataset = str(500 + 10 * number)  # --region all: one joint dataset per task
    raw, pre, res = (str(work / n) for n in ("raw", "preprocessed", "results"))
    patch = [str(v) for v in args.patch[task]]
    planned = next(Path(pre).glob(f"Dataset{dataset}_*/synthctPlans_3d_fullres"), None)  # shared data identifier
    if not (args.resume and planned is not None and any(planned.iterdir())):
        synthct("convert", str(root), raw, "--task", str(number), "--region", "all", "--force", "--workers", "2")
        skip = ["--input-skip"] if task == "cbct" else []  # CBCT: the U-Net learns a correction of the CBCT HU
        norm = ["--cbct-normalization", args.cbct_normalization] if task == "cbct" else []
        synthct("plan", dataset, "--arch", "resunet", "--patch-size", *patch, "--batch-size", "2", "--base-features",
                str(args.base_features), "--max-features", str(args.max_features), "--num-processes", "1", *skip,
                *norm, "--raw", raw, "--preprocessed", pre)
        synthct("preprocess", dataset, "--num-processes", "1", "--raw", raw, "--preprocessed", pre)
    extra = ["--augmentation", args.augmentation] if args.augmentation else []
    extra += ["--init", str(args.init)] if args.init else []
    extra += ["--continue", "--save-every", "1"] if args.resume else []
    epochs, iterations, background, optimizer, lr = (
        TRAINING[task][k] if getattr(args, k) is None else getattr(args, k)
        for k in ("epochs", "iterations", "background_weight", "optimizer", "lr"))
    synthct("train", dataset, "all", "--epochs", str(epochs), "--iterations", str(iterations),
            "--background-weight", str(background), "--optimizer", optimizer, "--lr", str(lr),
            "--val-iterations", "2", "--no-validation", "--device", args.device, "--preprocessed", pre,
            "--results", res, *extra)
    results = next(Path(res).glob(f"Dataset{dataset}_*/SynthCTTrainerL1__synthctResUNetPlans__3d_fullres"))
    out = args.out if args.out is not None else REPO / "weights" / task / MODELS[task]
    synthct("export", str(results), str(out), "--fp16", "--force")
    from synthct.network.manifest import read_manifest, write_manifest

    description = DESCRIPTIONS[task]
    if args.init is not None:
        description += (f" Then fine-tuned from those weights for {epochs} x {iterations} iterations (AdamW {lr:g})"
                        + (" with the cbct-drift augmentation (CBCT calibration drift in HU on the input: offset, "
                           "scale, smooth shading, noise level)." if args.augmentation == "cbct-drift" else "."))
    write_manifest(replace(read_manifest(out), description=description), out)
    return out


def _fit_linear(model: Path, train_cases: list[Path], image_name: str) -> tuple[float, float]:
    """Least-squares HU = a·x + b from the model's normalised input x, over the training voxels inside the body."""
    from synthct.network.manifest import read_manifest

    norm = read_manifest(model).input_normalization
    xs, ys = [], []
    for case in train_cases:
        image, ct, mask = (sitk.GetArrayFromImage(sitk.ReadImage(str(case / n))) for n in (image_name, "ct.mha",
                                                                                             "mask.mha"))
        body = mask > 0
        xs.append(norm.apply(image, body)[body].astype(np.float64))
        ys.append(ct[body].astype(np.float64))
    x, y = np.concatenate(xs), np.concatenate(ys)
    a, b = np.polyfit(x, y, 1)
    return float(a), float(b)


def evaluate(task: str, model: Path, held_out: tuple[sitk.Image, sitk.Image, sitk.Image],
             train_cases: list[Path]) -> dict[str, dict[str, float]]:
    """Held-out MAE/PSNR/MS-SSIM of the demo model (with its routed :data:`BLEND`), the identity baseline and the
    global linear map."""
    from synthct.inference.predictor import InferenceOptions, SyntheticCTPredictor
    from synthct.metrics import image_metrics
    from synthct.network.manifest import read_manifest

    image_im, ct_im, mask_im = held_out
    image, ct, mask = (sitk.GetArrayFromImage(im) for im in held_out)
    body = mask > 0
    spacing = tuple(reversed(image_im.GetSpacing()))
    t0 = time.perf_counter()
    options = InferenceOptions(device="cpu", progress=False, blend=BLEND[task])
    sct = SyntheticCTPredictor(model, options).predict(image, mask, spacing)
    predict_s = time.perf_counter() - t0
    a, b = _fit_linear(model, train_cases, "mr.mha" if task == "mri" else "cbct.mha")
    linear = np.clip(a * read_manifest(model).input_normalization.apply(image, body) + b, -1024, 3071)
    linear[~body] = -1000
    identity = np.clip(image.astype(np.float32), -1024, 3071)
    x = read_manifest(model).input_normalization.apply(image, body)
    oa, ob = (float(v) for v in np.polyfit(x[body].astype(np.float64), ct[body].astype(np.float64), 1))
    oracle = np.clip(oa * x + ob, -1024, 3071)
    oracle[~body] = -1000
    rows = {"demo model": image_metrics(ct, sct, mask=body), "identity (input as CT)": image_metrics(ct, identity,
            mask=body), f"global linear map (HU = {a:.1f} x + {b:.1f})": image_metrics(ct, linear, mask=body),
            f"oracle linear map fitted on the held-out data (HU = {oa:.1f} x + {ob:.1f})":
                image_metrics(ct, oracle, mask=body)}
    rows["demo model"]["predict_s_cpu"] = predict_s
    rows[f"global linear map (HU = {a:.1f} x + {b:.1f})"].update(a=a, b=b)  # HU = a·x + b, x = normalised input
    rows[f"oracle linear map fitted on the held-out data (HU = {oa:.1f} x + {ob:.1f})"].update(a=oa, b=ob)
    return rows


def route(task: str) -> None:
    """Route every region of ``task`` in resources/models.json to the demo model, saying what it is."""
    path = REPO / "resources" / "models.json"
    from synthct.contracts import synthrad

    routing = json.loads(path.read_text())
    note = "DEMO weights (scripts/make_demo_weights.py), not a SynthRAD2025 model; one model serves HN, TH and AB"
    routing["models"][task] = {region: {"model": f"weights/{task}/{MODELS[task]}", "step": 0.3, "blend": BLEND[task],
                                        "tta": False, "note": note} for region in synthrad.region_codes()}
    path.write_text(json.dumps(routing, indent=2) + "\n")


def write_results(results: dict[str, dict], timings: dict[str, float]) -> None:
    """Write weights/DEMO_RESULTS.md/.json; tasks not run this time keep their previous rows and timings."""
    previous = REPO / "weights" / "DEMO_RESULTS.json"
    if previous.is_file():
        old = json.loads(previous.read_text())
        results = {**{t: r for t, r in old["results"].items() if t not in results}, **results}
        timings = {**{t: v for t, v in old["train_seconds"].items() if t not in timings}, **timings}
        results = {t: results[t] for t in sorted(results, key=("mri", "cbct").index)}
    lines = ["# Demo weights: held-out results", "",
             "Produced by `python scripts/make_demo_weights.py DATA_DIR` (see its docstring for the data and the",
             "held-out split). These are **demo models trained on a few real volumes, not SynthRAD2025 models**.",
             "Metrics as the SynthRAD2025 evaluation computes them, inside the body mask.", ""]
    for task, rows in results.items():
        title = ("porcine MR slab z 28..67" if task == "mri"
                 else "REAL CBCT, held-out slab z 0..13 of samples/pancreas_cbct")
        lines += [f"## {task}: {title}",
                  "", "| method | MAE (HU) | PSNR (dB) | MS-SSIM |", "|---|---|---|---|"]
        lines += [f"| {name} | {m['mae']:.1f} | {m['psnr']:.2f} | {m['ms_ssim']:.4f} |" for name, m in rows.items()]
        lines += ["", f"Training + export wall time on this machine: {timings.get(task, float('nan')):.0f} s.", ""]
    lines += drift_section()
    (REPO / "weights" / "DEMO_RESULTS.md").write_text("\n".join(lines))
    (REPO / "weights" / "DEMO_RESULTS.json").write_text(json.dumps({"results": results, "train_seconds": timings},
                                                                   indent=2) + "\n")


def drift_section() -> list[str]:
    """DEMO_RESULTS.md lines quoting benchmarks/results/cbct_drift.json (if present): MAE per drifted version of the
    real held-out slab, each model against the oracle linear map fitted on that version; median and worst."""
    path = REPO / "benchmarks" / "results" / "cbct_drift.json"
    if not path.is_file():
        return []
    drift = json.loads(path.read_text())
    methods = [*drift["models"], "oracle linear map"]
    lines = ["## cbct under calibration drift (benchmarks/results/cbct_drift.md)", "",
             "Drifted versions of the same REAL held-out slab (`python benchmarks/cbct_drift.py`, see its docstring):",
             "MAE (HU) inside the body; the oracle linear map is fitted on each drifted version itself.", "",
             "| version | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for v in drift["versions"]:
        lines.append(f"| {v['name']} | " + " | ".join(f"{v['methods'][m]['mae']:.1f}" if m in v["methods"] else "-"
                                                     for m in methods) + " |")
    summary = drift["summary"]
    lines += ["| **median of the drifted versions** | " + " | ".join(
        f"**{summary[m]['median_mae']:.1f}**" if m in summary else "-" for m in methods) + " |",
        "| worst drifted version | " + " | ".join(
        f"{summary[m]['worst_mae']:.1f} ({summary[m]['worst_version']})" if m in summary else "-" for m in methods)
        + " |", ""]
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", type=Path, help="the project's data folder (shared/data: mridir-porcine-ct-mr, ...)")
    p.add_argument("--work", type=Path, default=REPO / "build" / "demo-weights", help="scratch folder")
    p.add_argument("--tasks", nargs="+", choices=("mri", "cbct"), default=["mri", "cbct"])
    p.add_argument("--epochs", type=int, default=None, help="epochs (default per task: TRAINING)")
    p.add_argument("--iterations", type=int, default=None, help="training iterations per epoch (default: TRAINING)")
    p.add_argument("--background-weight", type=float, default=None, help="L1 weight outside the body (TRAINING)")
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default=None, help="optimizer (default: TRAINING)")
    p.add_argument("--lr", type=float, default=None, help="initial learning rate (default: TRAINING)")
    p.add_argument("--base-features", type=int, default=8)
    p.add_argument("--max-features", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--evaluate-only", action="store_true", help="skip training; evaluate the existing weights")
    p.add_argument("--augmentation", choices=("paper", "mild", "cbct-drift"), default=None,
                   help="training augmentation preset (default: synthct train's, paper = none)")
    p.add_argument("--init", type=Path, default=None, help="initialise from these weights (.safetensors/.pth)")
    p.add_argument("--cbct-normalization", choices=("dataset", "per-case"), default="dataset",
                   help="Task 2 input normalisation (synthct plan --cbct-normalization)")
    p.add_argument("--out", type=Path, default=None,
                   help="export the model here instead of weights/ (a candidate: not routed, its held-out results "
                        "go to OUT/held_out.json instead of weights/DEMO_RESULTS)")
    p.add_argument("--resume", action="store_true",
                   help="reuse the work folder's preprocessed data and resume training from its latest checkpoint "
                        "(checkpoints every epoch)")
    args = p.parse_args()
    args.patch = {"mri": (16, 96, 96), "cbct": (16, 96, 96)}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    root = args.work / "synthrad"
    if root.exists():
        shutil.rmtree(root)
    held_out = build_roots(args.data, root)
    results, timings = {}, {}
    for task in args.tasks:
        model = args.out if args.out is not None else REPO / "weights" / task / MODELS[task]
        if not args.evaluate_only:
            t0 = time.perf_counter()
            model = train_model(task, root, args.work / task, args)
            timings[task] = time.perf_counter() - t0
            if args.out is None:
                route(task)
        train_cases = sorted((root / ("Task1" if task == "mri" else "Task2")).glob("*/*"))
        results[task] = evaluate(task, model, held_out[task], train_cases)
        for name, m in results[task].items():
            LOG.info("%s held-out | %-40s MAE %7.1f HU  PSNR %6.2f dB  MS-SSIM %.4f", task, name, m["mae"], m["psnr"],
                     m["ms_ssim"])
    if args.out is not None:
        (args.out / "held_out.json").write_text(json.dumps({"results": results, "train_seconds": timings},
                                                           indent=2) + "\n")
        return 0
    write_results(results, timings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
