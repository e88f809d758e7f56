#!/usr/bin/env python
"""Dose evaluation speed and gamma agreement on the real held-out pancreas slab (the ``make demo-dose`` case).

    python benchmarks/dose_speed.py                      # writes benchmarks/results/dose_speed.{json,md}
    python benchmarks/dose_speed.py --no-parallel        # skip the 1-vs-2-worker folder comparison

Side by side in one run, on the 2-core CPU:
1. per modality (a fresh process each, for its peak RSS): the plan on the CT (steering, influence matrix, optimiser),
   the forward dose of the same plan on each sCT (raw CBCT, bundled model's sCT), and a full re-plan on the sCT for
   comparison (what caching the CT plan saves);
2. gamma 2 %/2 mm on the real pairs: ours (10 and 5 steps per DTA) against pymedphys' gamma (10 steps, its default),
   pass rates and times;
3. folder mode on two real cases (photon only): 1 worker vs 2 workers, wall time.
Nothing is asserted; the machine's load average is recorded before and after. The demo's table is written too.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results"


def _sct(work: Path) -> Path:
    """The bundled Task 2 model's sCT of the held-out slab (the CBCT demo)."""
    from synthct.challenge.demo import run_demo

    return run_demo(REPO, work / "demo", "cpu", "cbct").output


def _modality(args: tuple[str, Path, dict[str, Path], Path]) -> dict[str, Any]:
    """Plan one modality on the CT, recompute it on each sCT, re-plan on each sCT; in its own process."""
    modality, ct, scts, work = args
    import numpy as np
    import SimpleITK as sitk

    from synthct.dose import engine
    from synthct.dose.case import DoseCase, load_structures
    from synthct.dose.settings import default_settings
    from synthct.dose.structures import resample_hu
    from synthct.io.image import read_image

    settings = default_settings(modality, "AB")
    _, geometry, ct_image = read_image(ct)
    case = DoseCase("bench", ct, scts, work / "mask.mha", (settings,), structures=work / "labels.mha",
                    structure_names=REPO / "samples" / "pancreas_cbct" / "labels.json")
    structures = load_structures(case, ct_image, geometry, settings.ct_resolution_mm)
    masks = structures.engine_masks()
    t0 = time.perf_counter()
    plan = engine.make_plan(resample_hu(ct_image, structures.reference), masks, settings)
    out: dict[str, Any] = {"plan_s": time.perf_counter() - t0, "plan_stages_s": plan.seconds,
                           "bixels": int(plan.weights.size), "forward_s": {}, "replan_s": {}}
    for stem, path in scts.items():
        hu = resample_hu(sitk.ReadImage(str(path)), structures.reference)
        dose, seconds = engine.forward_dose(plan, hu, masks)
        out["forward_s"][stem] = seconds
        np.save(work / f"{modality}_{stem}.npy", dose)
        t0 = time.perf_counter()
        engine.make_plan(hu, masks, settings)
        out["replan_s"][stem] = time.perf_counter() - t0
    np.save(work / f"{modality}_ct.npy", plan.dose)
    out["spacing_zyx"] = list(structures.spacing_zyx)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _gamma(work: Path, modality: str, stem: str, spacing: tuple[float, float, float]) -> dict[str, Any]:
    import numpy as np

    from synthct.dose.gamma import GammaCriteria, gamma_index, pass_rate, pymedphys_pass_rate

    ref, ev = np.load(work / f"{modality}_ct.npy"), np.load(work / f"{modality}_{stem}.npy")
    row: dict[str, Any] = {"modality": modality, "sct": stem, "voxels": int(ref.size)}
    for k in (10, 5):
        t0 = time.perf_counter()
        row[f"ours_k{k}_percent"] = pass_rate(gamma_index(ref, ev, spacing, GammaCriteria(interp_fraction=k)))
        row[f"ours_k{k}_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    row["pymedphys_k10_percent"] = pymedphys_pass_rate(ref, ev, spacing, GammaCriteria(), interp_fraction=10)
    row["pymedphys_k10_s"] = time.perf_counter() - t0
    return row


def _parallel(work: Path, files: dict[str, Path]) -> dict[str, float]:
    """Folder mode, two real cases (two axial halves of the slab), photon only: 1 vs 2 workers."""
    import SimpleITK as sitk

    from synthct.dose.case import DoseCase
    from synthct.dose.folder import FolderJob, run_folder
    from synthct.dose.settings import default_settings

    gt, pred = work / "release" / "Task2" / "AB", work / "release" / "pred"
    pred.mkdir(parents=True)
    for case, z in {"2ABA001": slice(0, 8), "2ABA002": slice(6, 14)}.items():
        (gt / case).mkdir(parents=True)
        for name in ("ct", "mask"):
            sitk.WriteImage(sitk.ReadImage(str(files[name]))[:, :, z], str(gt / case / f"{name}.mha"))
        sitk.WriteImage(sitk.ReadImage(str(files["cbct"]))[:, :, z], str(pred / f"{case}.mha"))
    template = DoseCase(case_id="", ct=Path(), scts={}, mask=Path(), settings=())
    out: dict[str, float] = {}
    for workers in (1, 2):
        job = FolderJob(pred_dir=pred, gt_dir=gt, masks_dir=gt, out_dir=work / f"folder{workers}", template=template,
                        settings_for=lambda region: (default_settings("photon", region),), workers=workers)
        t0 = time.perf_counter()
        run_folder(job)
        out[f"workers_{workers}_s"] = time.perf_counter() - t0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-parallel", action="store_true")
    parser.add_argument("--only-parallel", action="store_true", help="re-measure only the folder-mode comparison and "
                        "update it in an existing dose_speed.json")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    from synthct.dose.demo import run_dose_demo, table, write_slab

    if args.only_parallel:
        result = json.loads((args.out / "dose_speed.json").read_text())
        with tempfile.TemporaryDirectory() as tmp:
            files = write_slab(REPO / "samples" / "pancreas_cbct", (0, 14), Path(tmp))
            load = os.getloadavg()
            result["folder"] = {**_parallel(Path(tmp), files), "load_before": load, "load_after": os.getloadavg()}
        (args.out / "dose_speed.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.out / "dose_speed.md").write_text(_markdown(result))
        print(_markdown(result))
        return
    result: dict[str, Any] = {"load_before": os.getloadavg(), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sct = _sct(work)
        files = write_slab(REPO / "samples" / "pancreas_cbct", (0, 14), work)
        scts = {"cbct": files["cbct"], "sct": sct}
        ctx = mp.get_context("spawn")
        result["modalities"] = {}
        for modality in ("photon", "proton"):
            with ctx.Pool(1) as pool:
                result["modalities"][modality] = pool.map(_modality, [(modality, files["ct"], scts, work)])[0]
        result["gamma"] = [_gamma(work, m, s, tuple(result["modalities"][m]["spacing_zyx"]))
                           for m in ("photon", "proton") for s in scts]
        previous = args.out / "dose_speed.json"
        if args.no_parallel and previous.is_file() and "folder" in json.loads(previous.read_text()):
            result["folder"] = json.loads(previous.read_text())["folder"]  # kept from the run that measured it
        if not args.no_parallel:
            load = os.getloadavg()
            result["folder"] = {**_parallel(work, files), "load_before": load, "load_after": os.getloadavg()}
        t0 = time.perf_counter()
        demo = run_dose_demo(REPO / "samples" / "pancreas_cbct", (0, 14), sct, work / "dose_demo")
        result["demo_s"] = time.perf_counter() - t0
        result["demo_table"] = table(demo)
        result["demo_metrics"] = {s: {m: {k: demo["scts"][s][m][k] for k in ("dose_mae_percent", "dvh_error",
                                                                             "gamma_pass_percent")}
                                      for m in ("photon", "proton")} for s in demo["scts"]}
    result["load_after"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dose_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "dose_speed.md").write_text(_markdown(result))
    print(_markdown(result))


def _markdown(r: dict[str, Any]) -> str:
    lines = [f"# Dose evaluation speed (benchmarks/dose_speed.py), {r['cpus']} CPUs, load average "
             f"{r['load_before'][0]:.1f} before / {r['load_after'][0]:.1f} after", "",
             "| modality | bixels | plan on CT s (steering / influence / optimiser) | forward per sCT s | "
             "full re-plan per sCT s | re-plan / forward | peak RSS MB |", "|---|---|---|---|---|---|---|"]
    for m, v in r["modalities"].items():
        st = v["plan_stages_s"]
        fwd = sum(v["forward_s"].values()) / len(v["forward_s"])
        rep = sum(v["replan_s"].values()) / len(v["replan_s"])
        lines.append(f"| {m} | {v['bixels']} | {v['plan_s']:.1f} ({st['steering']:.1f} / {st['influence_matrix']:.1f}"
                     f" / {st['optimisation']:.1f}) | {fwd:.1f} | {rep:.1f} | {rep / fwd:.2f} | "
                     f"{v['peak_rss_mb']:.0f} |")
    lines += ["", "| gamma pair | voxels | ours k=10 % (s) | ours k=5 % (s) | pymedphys k=10 % (s) | "
              "ours k=10 - pymedphys | speed-up k=10 |", "|---|---|---|---|---|---|---|"]
    for g in r["gamma"]:
        lines.append(f"| {g['modality']} CT vs {g['sct']} | {g['voxels']} | {g['ours_k10_percent']:.2f} "
                     f"({g['ours_k10_s']:.1f}) | {g['ours_k5_percent']:.2f} ({g['ours_k5_s']:.1f}) | "
                     f"{g['pymedphys_k10_percent']:.2f} ({g['pymedphys_k10_s']:.1f}) | "
                     f"{g['ours_k10_percent'] - g['pymedphys_k10_percent']:+.2f} | "
                     f"{g['pymedphys_k10_s'] / g['ours_k10_s']:.1f}x |")
    if "folder" in r:
        f = r["folder"]
        load = f" (load average {f['load_before'][0]:.1f} / {f['load_after'][0]:.1f})" if "load_before" in f else ""
        lines += ["", f"Folder mode, 2 real cases, photon: 1 worker {f['workers_1_s']:.1f} s, 2 workers "
                  f"{f['workers_2_s']:.1f} s (speed-up {f['workers_1_s'] / f['workers_2_s']:.2f}x){load}."]
    lines += ["", f"Demo (`make demo-dose` case, both modalities, 2 sCTs): {r['demo_s']:.0f} s", "", r["demo_table"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
