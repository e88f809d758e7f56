"""Train-step time and peak memory of the AFP fine-tune step vs the stage-1 L1 step (same network, same patch, CPU).

    python benchmarks/afp_step_speed.py                         # ResU-Net (8, 16, 32, 64), 16x64x64, batch 2
    python benchmarks/afp_step_speed.py --extractor RESULTS_DIR --extractor-fold all --json out.json

Both steps are exactly what the trainers do per iteration on a fixed batch: forward of the synthesis network,
loss, backward, gradient clipping at 12, SGD step (momentum 0.99, Nesterov). L1 step: masked L1
(:class:`~synthct.training.loss.MaskedL1Loss`); AFP step: 5 · masked L1 + AFP
(:class:`~synthct.losses.afp.AFPLoss`, fp32, frozen extractor). The batch is a real CT patch of the porcine sample
(target) with a smoothed copy as input. The extractor is a trained results folder (``--extractor``) or, by default,
a random-weight stock-layout segmentation network of the given features (cost does not depend on the weights).

Each mode runs in its own subprocess, so the peak resident set size (``resource.getrusage().ru_maxrss``) belongs to
that mode alone; "step peak" is the peak RSS minus the RSS after setup (network, extractor, batch), which is the
memory the step itself (activations, gradients, optimizer state) adds. Time: median over ``--steps`` steps after
2 warm-ups.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _rss_mib() -> float:
    """Current resident set size in MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_mode(args: argparse.Namespace) -> dict:
    import numpy as np
    import SimpleITK as sitk
    import torch

    from synthct.contracts.normalization import TargetNormalization
    from synthct.losses import AFPLoss, load_feature_extractor
    from synthct.network.architectures import synthrad_arch_kwargs
    from synthct.network.build import architecture_block, build_network
    from synthct.network.scaffold import random_segmentation_results
    from synthct.training.loss import MaskedL1Loss

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tn = TargetNormalization(mean=-300.0, std=500.0)
    arch = architecture_block("ResidualUNetUpsample", synthrad_arch_kwargs(tuple(args.features), residual=True))
    network = build_network(arch, 1, 1).train()
    optimizer = torch.optim.SGD(network.parameters(), 1e-3, momentum=0.99, nesterov=True, weight_decay=3e-5)
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(REPO / "samples" / "porcine" / "ct.mha"))).astype(np.float32)
    dz, dy, dx = args.patch
    crops = [ct[k:k + dz, 40 + 8 * k:40 + 8 * k + dy, 40:40 + dx] for k in range(args.batch)]
    target = torch.from_numpy(np.stack([tn.to_z(c) for c in crops]))[:, None]
    data = torch.nn.functional.avg_pool3d(target, 3, 1, 1)
    seg = torch.ones_like(target, dtype=torch.int16)
    l1 = MaskedL1Loss()
    afp = None
    if args.mode == "afp":
        if args.extractor:
            extractor = load_feature_extractor(args.extractor, args.extractor_fold)
        else:
            folder = random_segmentation_results(Path(tempfile.mkdtemp()) / "extractor",
                                                 features=tuple(args.extractor_features), spacing=tuple(args.spacing))
            extractor = load_feature_extractor(folder)
        afp = AFPLoss(extractor.eval(), tn, data_spacing=tuple(args.spacing))

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        output = network(data)
        loss = l1(output, target, seg)
        if afp is not None:
            loss = 5.0 * loss + afp(output.float(), target, valid=seg >= 0, body=seg == 1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 12)
        optimizer.step()
        return float(loss.detach())

    setup_rss = _rss_mib()
    times = []
    for k in range(args.steps + 2):
        t0 = time.perf_counter()
        step()
        if k >= 2:
            times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"mode": args.mode, "median_step_s": statistics.median(times), "min_step_s": min(times),
            "setup_rss_mib": round(setup_rss, 1), "peak_rss_mib": round(peak, 1),
            "step_peak_mib": round(peak - setup_rss, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("l1", "afp"), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--patch", type=int, nargs=3, default=(16, 64, 64))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--features", type=int, nargs="+", default=(8, 16, 32, 64))
    parser.add_argument("--spacing", type=float, nargs=3, default=(2.5, 1.0, 1.0),
                        help="data spacing (also the default extractor's spacing: no resampling)")
    parser.add_argument("--extractor", default=None, help="trained extractor results folder (default: random)")
    parser.add_argument("--extractor-fold", default=0, type=lambda v: v if v == "all" else int(v))
    parser.add_argument("--extractor-features", type=int, nargs="+", default=(8, 16, 32, 64))
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.mode is not None:
        print(json.dumps(run_mode(args)))
        return 0
    forwarded = list(argv if argv is not None else sys.argv[1:])
    results = {}
    for mode in ("l1", "afp"):
        out = subprocess.run([sys.executable, __file__, "--mode", mode, *forwarded], check=True,
                             capture_output=True, text=True).stdout
        results[mode] = json.loads(out.strip().splitlines()[-1])
    report = {"config": {"patch": list(args.patch), "batch": args.batch, "features": list(args.features),
                         "extractor": args.extractor or f"random {list(args.extractor_features)}",
                         "threads": args.threads, "steps": args.steps,
                         "cpu": platform.processor() or platform.machine()},
              "results": results,
              "afp_over_l1_time": results["afp"]["median_step_s"] / results["l1"]["median_step_s"]}
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
