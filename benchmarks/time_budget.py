"""How the per-case time budget decides on a real case: projection after the first tile batch vs the actual time.

A random-weight 5-fold nnResU-Net "trained with mirroring" along X (``synthct.network.scaffold``; 8-16-32 features,
patch 16 x 64 x 64, the porcine sample's spacing) runs through ``process.py`` on the committed real porcine MR case
(``samples/porcine``, 40 x 186 x 147) with 5 folds and mirroring TTA, step 0.5, once per budget in ``--budgets``
(seconds, counted from the process start), each in a fresh ``process.py`` process. Prints per budget: what was
dropped, the projection made after the first tile batch and the time the case actually took. Random weights: this
measures the mechanism, not image quality.

Run: ``nice -n 15 python benchmarks/time_budget.py [--budgets 90 30 1]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk

from synthct.contracts import synthrad
from synthct.network.export import export_model
from synthct.network.scaffold import random_training_results

REPO = Path(__file__).resolve().parents[1]


def build(work: Path) -> tuple[Path, Path]:
    """(application root with resources/models.json, grand-challenge input folder)."""
    results = random_training_results(work / "results", task="mri", features=(8, 16, 32), patch_size=(16, 64, 64),
                                      spacing=(2.5, 1.0, 1.0), folds=(0, 1, 2, 3, 4), mirror_axes=(2,))
    model = export_model(results, work / "app" / "weights" / "mri" / "random-5fold")
    entry = {"model": str(model.relative_to(work / "app")), "step": 0.5, "tta": True}
    (work / "app" / "resources").mkdir(parents=True)
    (work / "app" / "resources" / "models.json").write_text(
        json.dumps({"version": 1, "models": {"mri": dict.fromkeys(synthrad.region_codes(), entry)}}))
    inp = work / "input"
    for sub, name in (("mri", "mr.mha"), ("body", "mask.mha")):
        (inp / "images" / sub).mkdir(parents=True)
        sitk.WriteImage(sitk.ReadImage(str(REPO / "samples" / "porcine" / name)), str(inp / "images" / sub / "c.mha"))
    (inp / "region.json").write_text(json.dumps("Abdomen"))
    return work / "app", inp


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[90, 30, 1])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="synthct-budget-"))
    app, inp = build(work)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for budget in args.budgets:
        cmd = [sys.executable, str(REPO / "process.py"), "--input", str(inp), "--output", str(work / f"out-{budget:g}"),
               "--models", str(app / "resources" / "models.json"), "--device", "cpu", "--time-budget", str(budget)]
        load = os.getloadavg()[0]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        wall = time.monotonic() - t0
        lines = proc.stderr.splitlines()
        decision = next((ln for ln in lines if "time budget" in ln and "projected" in ln), "?")
        finished = next((ln for ln in reversed(lines) if "the case took" in ln), "?")
        print(f"budget {budget:g} s: exit {proc.returncode}, process wall {wall:.1f} s, load average {load:.1f}\n"
              f"  decision: {decision}\n  end: {finished}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
