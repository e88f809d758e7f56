"""Per-iteration training-step time: stock ``nnUNetTrainer`` vs ``SynthCTTrainerL1`` (eager, channels-last, compiled)
on the same network class, patch and batch, one run (run by gpu_check.sh; needs no SimpleITK and no data).

    python benchmarks/gpu_train_step.py eager       # stock (nnUNet_compile=f), ours, ours + channels-last
    python benchmarks/gpu_train_step.py compile     # stock's default on CUDA (torch.compile), ours compiled
    ... --cpu-dry-run                               # tiny sizes on the CPU

Both trainers are built from the same scaffolded plans (the paper's ResidualUNetUpsample at the SynthRAD topology,
patch 48x192x192, batch 2) and step on a fixed random batch: ``train_step`` is forward, loss, backward, clip, SGD
step, AMP + GradScaler on CUDA. Stock sees two input channels (MR + CT, as in train_step_speed.py), its two-class
Dice+CE loss and deep supervision (its default); ours one input, the masked L1. The preprocessed folder holds one empty
``.npz`` only so that nnU-Net's dataset-class probe in ``initialize`` finds its file type; no data is read.
GPU-hours per fold = epochs × (250 × step + 50 × validation forward), as in train_step_speed.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from gpu_common import (
    Log,
    add_common_args,
    environment,
    median_seconds,
    peak_gib,
    pick_device,
    reset_peak,
    sizes,
    stub_missing_io_libraries,
    timed_once,
)

os.environ.setdefault("nnUNet_n_proc_DA", "0")


def make_plans(root: Path, s) -> tuple[dict, dict]:
    """Scaffolded plans + dataset.json, with nnU-Net's folders under ``root`` (and the probe file)."""
    from synthct.contracts.normalization import InputNormalization, TargetNormalization
    from synthct.network.architectures import synthrad_arch_kwargs
    from synthct.network.scaffold import scaffold_plans

    plans = scaffold_plans("mri", ["AB"], "ResidualUNetUpsample", synthrad_arch_kwargs(list(s.features)), s.patch,
                           s.spacing, InputNormalization("zscore_mask"), TargetNormalization(-300.0, 500.0), "bench")
    plans["configurations"]["3d_fullres"]["batch_size"] = 2
    dataset = {"channel_names": {"0": "MR", "1": "noNorm"}, "labels": {"background": 0, "body": 1},
               "numTraining": 1, "file_ending": ".mha"}
    from synthct.paths import use_nnunet_paths

    use_nnunet_paths(root / "nnUNet_raw", root / "nnUNet_preprocessed", root / "nnUNet_results")
    data = root / "nnUNet_preprocessed" / plans["dataset_name"] / "synthctPlans_3d_fullres"
    data.mkdir(parents=True)
    np.savez(data / "probe.npz")
    return plans, dataset


def stock_trainer(plans: dict, dataset: dict, device: torch.device, compile_: bool):
    import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as module

    os.environ["nnUNet_compile"] = "t" if compile_ else "f"
    trainer = module.nnUNetTrainer({**json.loads(json.dumps(plans)), "continue_training": False}, "3d_fullres", 0,
                                   dataset, device)
    trainer.initialize()
    trainer.network.train()
    return trainer


def our_trainer(plans: dict, dataset: dict, device: torch.device, **config):
    from synthct.training.config import TrainConfig
    from synthct.training.run import build_trainer

    trainer = build_trainer(plans, dataset, 0, TrainConfig(**config), device=device)
    trainer.initialize()
    trainer.network.train()
    return trainer


def batches(trainer, s, device: torch.device, stock: bool) -> dict:
    gen = torch.Generator().manual_seed(0)
    shape = (2, 1, *s.patch)
    mr = torch.randn(shape, generator=gen)
    hu = (torch.randn(shape, generator=gen) * 400 - 300).clamp(-1024, 3071)
    seg = (torch.rand(shape, generator=gen) > 0.3).to(torch.int16)
    if not stock:
        return {"data": mr, "target": hu, "seg": seg}
    targets = [F.interpolate(seg.float(), size=[max(1, round(p * f)) for p, f in zip(s.patch, scale, strict=True)],
                             mode="nearest") for scale in trainer._get_deep_supervision_scales()]
    return {"data": torch.cat([mr, hu / 500.0], 1), "target": targets}


def measure(name: str, trainer, batch: dict, s, device: torch.device, log: Log) -> None:
    reset_peak(device)
    first = timed_once(lambda: trainer.train_step(batch), device)[1]  # compilation / autotuning happen here
    step = median_seconds(lambda: trainer.train_step(batch), device, s.iters)
    data = batch["data"].to(device)
    amp = torch.autocast("cuda") if device.type == "cuda" else contextlib.nullcontext()

    def forward() -> None:
        with torch.no_grad(), amp:
            trainer.network(data)

    val = median_seconds(forward, device, max(2, s.iters // 2))  # the validation forward, same for both
    hours = {f"h_per_fold_{e}ep": e * (250 * step + 50 * val) / 3600 for e in (1000, 1500)}
    params = sum(p.numel() for p in trainer.network.parameters()) / 1e6
    log("train", trainer=name, step_s=step, first_step_s=first, val_forward_s=val,
        params_M=params, patch=s.patch, batch=2, peak_GiB=peak_gib(device), **hours)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("phase", choices=("eager", "compile"))
    add_common_args(parser)
    args = parser.parse_args()
    s, device = sizes(args.cpu_dry_run), pick_device(args.cpu_dry_run)
    log = Log(args.out, f"train-{args.phase}", args.cpu_dry_run)
    stub_missing_io_libraries()
    log("environment", **environment(device))
    torch.backends.cudnn.benchmark = True
    with tempfile.TemporaryDirectory() as tmp:
        plans, dataset = make_plans(Path(tmp), s)
        if args.phase == "eager":
            runs = [("stock nnUNetTrainer (eager)", True, {"compile_": False}),
                    ("SynthCTTrainerL1 (eager)", False, {"compile": "off"}),
                    ("SynthCTTrainerL1 (channels-last)", False, {"compile": "off", "channels_last": True})]
        else:
            runs = [("stock nnUNetTrainer (default: torch.compile)", True, {"compile_": True}),
                    ("SynthCTTrainerL1 (compile default)", False, {"compile": "default"}),
                    ("SynthCTTrainerL1 (compile + channels-last)", False, {"compile": "default",
                                                                           "channels_last": True})]
        for name, stock, kw in runs:
            if stock and device.type == "cpu" and kw.get("compile_"):
                log("train", trainer=name, refused="stock nnU-Net never compiles on the CPU")
                continue
            try:
                trainer = stock_trainer(plans, dataset, device, **kw) if stock else our_trainer(plans, dataset,
                                                                                                 device, **kw)
                measure(name, trainer, batches(trainer, s, device, stock), s, device, log)
            except Exception as exc:  # a failing variant is a result; the others still run
                traceback.print_exc()
                log("train", trainer=name, failed=f"{type(exc).__name__}: {str(exc)[:300]}")
            trainer = None
            reset_peak(device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
