"""Task 2 under CBCT calibration drift (issue 22): the demo model vs linear baselines on drifted versions of the REAL
held-out CBCT slab.

    python benchmarks/cbct_drift.py ../shared/data                        # today's bundled model
    python benchmarks/cbct_drift.py ../shared/data --model "drift fine-tune=build/drift-candidate" --add
    # writes benchmarks/results/cbct_drift.{json,md}; --add keeps the rows already there and adds the new model

The held-out slab is axial slices 0..13 of ``samples/pancreas_cbct`` (the real CBCT + planning CT of one patient,
``test/cbct``; never trained on). Each drifted version is that CBCT passed through
:func:`synthct.training.augmentation_drift.apply_drift` (in HU, at the slab's native spacing) with the parameters of
:data:`VERSIONS`: the issue's ranges (offset ±100 HU, scale 0.85-1.15, extra smooth shading 0-1.5 x the measured
176 HU std, noise 0.5-2 x the measured 95.8 HU), first one factor at a time at the ends of its range, then
:data:`N_RANDOM` versions with every factor drawn uniformly in its range (seeded). The same drift model generates the
``cbct-drift`` training augmentation, so a model trained with it sees this family in distribution: this benchmark
measures robustness to the modelled drift, not to a real second fraction.

Methods on each version, scored inside the body mask with the project's metrics (MAE, PSNR, MS-SSIM):

* each model (``--model NAME=FOLDER``; default today's bundled ``weights/cbct/pancreas-demo``), routed blending
  (mean), CPU;
* identity: the drifted CBCT as the CT;
* training-data linear map: HU = a·x + b on the model's normalised input x, least squares over the training
  voxels inside the body (as ``weights/DEMO_RESULTS.md``), fitted once, undrifted;
* per-case normalisation + training-data linear map: the same with x the per-case robust z-score
  (``--cbct-normalization per-case``): what per-case normalisation alone buys;
* oracle linear map: HU = a·x + b fitted on that drifted version's own held-out voxels (not available in practice).

Median and worst case (largest MAE) are over the drifted versions (the undrifted slab is reported separately).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from make_demo_weights import BLEND, _fit_linear, build_roots  # noqa: E402

from synthct.contracts.cbct_normalization import robust_zscore  # noqa: E402
from synthct.training.augmentation_drift import (  # noqa: E402
    MEASURED_NOISE_STD_HU,
    MEASURED_SHADING_STD_HU,
    DriftParams,
    DriftRanges,
    draw_drift,
)
from synthct.training.augmentation_drift import apply_drift as drift  # noqa: E402

LOG = logging.getLogger("cbct_drift")
OUT = REPO / "benchmarks" / "results" / "cbct_drift"
TODAY = ("today's model", REPO / "weights" / "cbct" / "pancreas-demo")
N_RANDOM = 8
_S = MEASURED_SHADING_STD_HU
#: Single-factor versions at the ends of each range, then N_RANDOM versions with every factor on (seeds 101..).
VERSIONS: tuple[tuple[str, DriftParams], ...] = (
    ("offset +100 HU", DriftParams(offset_hu=100.0)),
    ("offset -100 HU", DriftParams(offset_hu=-100.0)),
    ("scale 0.85", DriftParams(scale=0.85)),
    ("scale 1.15", DriftParams(scale=1.15)),
    ("shading 0.75 x", DriftParams(shading_std_hu=0.75 * _S, seed=1)),
    ("shading 1.5 x", DriftParams(shading_std_hu=1.5 * _S, seed=2)),
    ("noise 0.5 x", DriftParams(noise_factor=0.5, seed=3)),
    ("noise 2 x", DriftParams(noise_factor=2.0, seed=4)),
    *((f"random {k}", draw_drift(np.random.default_rng(100 + k), DriftRanges(1.0, p_shading=1.0, p_noise=1.0)))
      for k in range(1, N_RANDOM + 1)),
)


def linear(x: np.ndarray, a: float, b: float, body: np.ndarray) -> np.ndarray:
    out = np.clip(a * x + b, -1024, 3071)
    out[~body] = -1000
    return out


def fit_per_case_linear(train_cases: list[Path], clip: tuple[float, float]) -> tuple[float, float]:
    """HU = a·x + b with x the per-case robust z-score, least squares over the training voxels inside the body."""
    xs, ys = [], []
    for case in train_cases:
        image, ct, mask = (sitk.GetArrayFromImage(sitk.ReadImage(str(case / n))) for n in ("cbct.mha", "ct.mha",
                                                                                             "mask.mha"))
        body = mask > 0
        xs.append(robust_zscore(image, body, clip)[0][body].astype(np.float64))
        ys.append(ct[body].astype(np.float64))
    a, b = np.polyfit(np.concatenate(xs), np.concatenate(ys), 1)
    return float(a), float(b)


def score_version(cbct: np.ndarray, ct: np.ndarray, body: np.ndarray, spacing: tuple[float, ...],
                  models: dict[str, Path], fits: dict[str, tuple[float, float]], skip: set[str]) -> dict[str, dict]:
    """Every method's metrics on one (drifted) CBCT; ``skip``: methods already scored."""
    from synthct.inference.predictor import InferenceOptions, SyntheticCTPredictor
    from synthct.metrics import image_metrics
    from synthct.network.manifest import read_manifest

    rows: dict[str, dict] = {}
    norm = read_manifest(TODAY[1]).input_normalization
    for name, folder in models.items():
        if name in skip:
            continue
        t0 = time.perf_counter()
        sct = SyntheticCTPredictor(folder, InferenceOptions(device="cpu", progress=False, blend=BLEND["cbct"])
                                   ).predict(cbct, body.astype(np.uint8), spacing)
        rows[name] = {**image_metrics(ct, sct, mask=body), "predict_s_cpu": time.perf_counter() - t0}
    x = norm.apply(cbct, body)
    assert norm.clip is not None
    xr = robust_zscore(cbct, body, norm.clip)[0]
    oa, ob = (float(v) for v in np.polyfit(x[body].astype(np.float64), ct[body].astype(np.float64), 1))
    baselines = {"identity": np.clip(cbct.astype(np.float32), -1024, 3071),
                 "training-data linear map": linear(x, *fits["dataset"], body),
                 "per-case norm + training-data linear map": linear(xr, *fits["per-case"], body),
                 "oracle linear map": linear(x, oa, ob, body)}
    for name, image in baselines.items():
        if name not in skip:
            rows[name] = image_metrics(ct, image, mask=body)
    if "oracle linear map" in rows:
        rows["oracle linear map"].update(a=oa, b=ob)
    return rows


def summary(versions: list[dict]) -> dict[str, dict[str, float | str]]:
    """Per method: median MAE and worst (largest) MAE over the drifted versions, and the worst version's name."""
    drifted = [v for v in versions if v["name"] != "undrifted"]
    out: dict[str, dict[str, float | str]] = {}
    for method in drifted[0]["methods"]:
        maes = [v["methods"][method]["mae"] for v in drifted if method in v["methods"]]
        if len(maes) != len(drifted):
            continue
        worst = int(np.argmax(maes))
        out[method] = {"median_mae": float(np.median(maes)), "worst_mae": float(maes[worst]),
                       "worst_version": drifted[worst]["name"],
                       "median_psnr": float(np.median([v["methods"][method]["psnr"] for v in drifted])),
                       "median_ms_ssim": float(np.median([v["methods"][method]["ms_ssim"] for v in drifted]))}
    return out


def write_markdown(result: dict, path: Path) -> None:
    methods = list(result["summary"])
    lines = ["# Task 2 under CBCT calibration drift", "",
             "Produced by `python benchmarks/cbct_drift.py` (see its docstring): drifted versions of the REAL held-out",
             "CBCT slab (samples/pancreas_cbct, slices 0..13), MAE in HU inside the body mask. Drift parameters: HU' =",
             "scale·(HU + shading + noise change) + offset; shading = extra smooth field std (HU), noise = factor on",
             f"the measured {MEASURED_NOISE_STD_HU} HU.", "",
             "| version | scale | offset | shading std | noise x | " + " | ".join(methods) + " |",
             "|---|---|---|---|---|" + "---|" * len(methods)]
    for v in result["versions"]:
        p = v["params"]
        lines.append(f"| {v['name']} | {p['scale']:.3f} | {p['offset_hu']:+.0f} | {p['shading_std_hu']:.0f} | "
                     f"{p['noise_factor']:.2f} | " + " | ".join(
                         f"{v['methods'][m]['mae']:.1f}" if m in v["methods"] else "-" for m in methods) + " |")
    n = len([v for v in result["versions"] if v["name"] != "undrifted"])
    lines += ["", f"Over the {n} drifted versions:", "",
              "| method | median MAE | worst MAE (version) | median PSNR | median MS-SSIM |", "|---|---|---|---|---|"]
    lines += [f"| {m} | {s['median_mae']:.1f} | {s['worst_mae']:.1f} ({s['worst_version']}) | {s['median_psnr']:.2f} "
              f"| {s['median_ms_ssim']:.4f} |" for m, s in result["summary"].items()]
    lines += ["", "Models: " + "; ".join(f"{k} = `{v}`" for k, v in result["models"].items()) + ".",
              f"Training-data linear maps: {result['fits']}.", ""]
    path.write_text("\n".join(lines))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", type=Path, help="the project's data folder (shared/data)")
    p.add_argument("--model", action="append", default=[], metavar="NAME=FOLDER",
                   help="model folder(s) to score (default: today's bundled model)")
    p.add_argument("--add", action="store_true", help="keep the methods already in the result file; add the others")
    p.add_argument("--out", type=Path, default=OUT, help="result files stem (.json and .md)")
    p.add_argument("--limit", type=int, default=None, help="first N drifted versions only (smoke runs)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    models = dict(m.split("=", 1) for m in args.model) if args.model else {TODAY[0]: str(TODAY[1])}
    models = {k: Path(v) if Path(v).is_absolute() else (Path.cwd() / v) for k, v in models.items()}
    previous = json.loads(args.out.with_suffix(".json").read_text()) if args.add and \
        args.out.with_suffix(".json").is_file() else None
    with tempfile.TemporaryDirectory() as tmp:
        held_out = build_roots(args.data, Path(tmp))["cbct"]
        train_cases = sorted((Path(tmp) / "Task2").glob("*/*"))
        from synthct.network.manifest import read_manifest

        clip = read_manifest(TODAY[1]).input_normalization.clip
        assert clip is not None
        fits = {"dataset": _fit_linear(TODAY[1], train_cases, "cbct.mha"),
                "per-case": fit_per_case_linear(train_cases, clip)}
    cbct_im, ct_im, mask_im = held_out
    cbct, ct, mask = (sitk.GetArrayFromImage(im) for im in held_out)
    body = mask > 0
    spacing = tuple(float(s) for s in reversed(cbct_im.GetSpacing()))
    versions = [("undrifted", DriftParams()), *VERSIONS[: args.limit]]
    result: dict = {"models": {k: str(v.relative_to(REPO)) if v.is_relative_to(REPO) else str(v)
                               for k, v in models.items()}, "fits": fits, "versions": []}
    if previous is not None:
        result["models"] = {**previous["models"], **result["models"]}
    for i, (name, params) in enumerate(versions):
        old = previous["versions"][i]["methods"] if previous is not None and i < len(previous["versions"]) else {}
        drifted = drift(cbct.astype(np.float32), spacing, params)
        rows = score_version(drifted, ct, body, spacing, models, fits, set(old))
        methods = {**old, **rows}
        result["versions"].append({"name": name, "params": params.to_json(), "methods": methods})
        LOG.info("%-16s %s", name, "  ".join(f"{m} {r['mae']:.1f}" for m, r in methods.items()))
    result["summary"] = summary(result["versions"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(result, args.out.with_suffix(".md"))
    LOG.info("wrote %s(.json, .md)", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
