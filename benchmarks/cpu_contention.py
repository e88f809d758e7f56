#!/usr/bin/env python
"""CPU inference when the cores are shared: intra-op threads vs available CPUs, OpenMP waiting, tile batch.

    python benchmarks/cpu_contention.py                       # bundled Task 2 demo model on test/cbct
    python benchmarks/cpu_contention.py --load 0 2 4 --repeat 2

For every combination of background load (N busy-looping processes, one per ``--load`` value), torch intra-op threads
(the torch default = the machine's cores, and 1) and OpenMP wait policy (default, PASSIVE), one fresh subprocess
loads the model and predicts the case; the table gives the prediction wall time (min over ``--repeat``) and its ratio
to the quiet run with the torch default. The fair-share expectation for a process that wants ``c`` cores on a machine
with ``n`` cores and ``L`` busy processes is ``max(1, (L + c) / n)`` times its quiet time; the "vs fair" column divides
by that. Nothing here is asserted: read the ratios, and note how loaded the machine already was (printed).
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, sys, time
from pathlib import Path
import numpy as np, SimpleITK as sitk, torch
from synthct.inference.predictor import InferenceOptions, SyntheticCTPredictor
model, case, threads, batch = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
image_path = next((case / "images").glob("[mc]*/*.mha"))
mask_path = next((case / "images" / "body").glob("*.mha"))
image = sitk.ReadImage(str(image_path))
arr, mask = sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(sitk.ReadImage(str(mask_path)))
n = {"auto": None, "torch": torch.get_num_threads()}.get(threads) if threads in ("auto", "torch") else int(threads)
opts = InferenceOptions(device="cpu", progress=False, tile_batch=batch, cpu_threads=n)
p = SyntheticCTPredictor(model, opts)
t0 = time.perf_counter()
p.predict(arr, mask, tuple(reversed(image.GetSpacing())))
print(json.dumps({"seconds": time.perf_counter() - t0, "threads": torch.get_num_threads()}))
"""


def _spin(stop: mp.Event) -> None:  # a busy process: one core's worth of demand
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def run_once(model: Path, case: Path, threads: str, batch: int, passive: bool) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    else:
        env.pop("OMP_WAIT_POLICY", None)
    out = subprocess.run([sys.executable, "-c", _CHILD, str(model), str(case), threads, str(batch)], env=env,
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=REPO / "weights" / "cbct" / "pancreas-demo")
    p.add_argument("--case", type=Path, default=REPO / "test" / "cbct" / "input")
    p.add_argument("--load", type=int, nargs="+", default=[0, 2, 4], help="busy background processes")
    p.add_argument("--threads", nargs="+", default=["torch", "1"], help="'torch' (its default) or integers")
    p.add_argument("--batch", type=int, nargs="+", default=[2], help="tile batch sizes")
    p.add_argument("--passive", choices=("both", "no", "yes"), default="both", help="OMP_WAIT_POLICY=PASSIVE")
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args()
    cores = os.cpu_count() or 1
    print(f"machine: {cores} cores; load average before start {os.getloadavg()}")
    passive = {"both": (False, True), "no": (False,), "yes": (True,)}[args.passive]
    rows, quiet = [], {}
    for load in args.load:
        stop = mp.Event()
        spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(load)]
        for s in spinners:
            s.start()
        time.sleep(1.0)
        try:
            for threads, batch, pas in itertools.product(args.threads, args.batch, passive):
                runs = [run_once(args.model, args.case, threads, batch, pas) for _ in range(args.repeat)]
                best = min(r["seconds"] for r in runs)
                n_threads = runs[0]["threads"]
                key = (threads, batch, pas)
                if load == 0:
                    quiet[key] = best
                base = quiet.get(("torch", batch, False)) or best
                fair = max(1.0, (load + n_threads) / cores) * quiet.get(key, best)
                rows.append((load, n_threads, batch, "PASSIVE" if pas else "default", best, best / base, best / fair))
                print(f"load {load:2d} | threads {n_threads} | tile batch {batch} | OMP wait {rows[-1][3]:7s} | "
                      f"{best:7.1f} s | vs quiet torch-default {best / base:5.2f}x | vs fair share {best / fair:5.2f}x",
                      flush=True)
        finally:
            stop.set()
            for s in spinners:
                s.join()
    print("\n| busy processes | threads | tile batch | OMP_WAIT_POLICY | predict s | vs quiet default "
          "| vs fair share |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.1f} | {r[5]:.2f}x | {r[6]:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
