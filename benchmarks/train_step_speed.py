"""Per-iteration time of ``SynthCTTrainerL1`` vs stock ``nnUNetTrainer`` on the same network, patch and data (CPU).

    python benchmarks/train_step_speed.py                   # defaults: nnResU-Net-upsample, 4 stages, 24x64x64, batch 2
    python benchmarks/train_step_speed.py --steps 12 --json out.json

Data: five (32, 96, 96) crops of the committed real porcine MR/CT/mask, converted, planned with a fixed patch and
feature count, and preprocessed by the synthct pipeline; the stock trainer reads the same preprocessed folder (it sees
the HU target as a second input channel and the body mask as the label). Both trainers are built from the same plans,
so the network class, patch and batch size are identical (stock: 2 input channels, 2 outputs plus deep-supervision
heads; synthct: 1 input, 1 output).

Two measurements, each the median over ``--steps`` timed iterations after 2 warm-ups, trainers interleaved round by
round so that load from other processes hits both alike:

* **step**: ``train_step`` on one fixed batch (forward, loss, backward, SGD step): the trainer's own compute cost.
* **iteration**: ``train_step(next(dataloader))`` with each trainer's own in-process data pipeline
  (``nnUNet_n_proc_DA=0``): stock nnU-Net augmentation vs synthct's ``paper`` (none) and ``mild`` presets.

Stock is measured with deep supervision (its default) and without it (same decoder outputs as synthct).

``--network-only`` (runs on CUDA without nnunetv2 or data) times the synthct train step itself (autocast forward,
fp32 masked L1, GradScaler, clip 12, SGD) and a validation forward for the full-size paper networks at the SynthRAD
topology (6 stages, 32-320 features), and turns them into GPU hours per fold::

    python benchmarks/train_step_speed.py --network-only --device cuda --patch 48 192 192
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("nnUNet_n_proc_DA", "0")
os.environ.setdefault("nnUNet_compile", "f")

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CROPS = ((0, 20, 10), (4, 50, 30), (8, 80, 50), (2, 60, 20), (6, 30, 40))
CROP = (32, 96, 96)


def make_download(root: Path) -> Path:
    """``root/Task1/AB/<id>/{mr,ct,mask}.mha``: (32, 96, 96) crops of the porcine sample."""
    import SimpleITK as sitk

    images = {n: sitk.ReadImage(str(REPO / "samples" / "porcine" / f"{n}.mha")) for n in ("mr", "ct", "mask")}
    for k, (z, y, x) in enumerate(CROPS):
        case = root / "Task1" / "AB" / f"1ABB{k:03d}"
        case.mkdir(parents=True)
        for name, image in images.items():
            sitk.WriteImage(image[x:x + CROP[2], y:y + CROP[1], z:z + CROP[0]], str(case / f"{name}.mha"))
    return root


def prepare(work: Path, arch: str, patch: tuple[int, int, int], features: tuple[int, int]) -> tuple[str, str]:
    """Convert, plan and preprocess; returns (dataset name, plans name)."""
    from synthct.network.planning import plan_dataset
    from synthct.paths import use_nnunet_paths
    from synthct.preprocessing.dataset_conversion import convert_synthrad
    from synthct.preprocessing.preprocessor import preprocess_dataset

    dirs = [work / n for n in ("raw", "preprocessed", "results")]
    for d in dirs:
        d.mkdir()
    use_nnunet_paths(*dirs)
    (report,) = convert_synthrad(make_download(work / "download"), dirs[0], task=1)
    written = plan_dataset(report.dataset_dir.name, (arch,), num_processes=1, patch_size=patch, batch_size=2,
                           base_features=features[0], max_features=features[1], intensity_samples=100_000)
    (plans_name,) = written
    preprocess_dataset(report.dataset_dir.name, plans_name, num_processes=1)
    return report.dataset_dir.name, plans_name


def build_trainers(dataset: str, plans_name: str) -> dict[str, object]:
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from synthct.preprocessing.plans import load_plans
    from synthct.training.config import TrainConfig
    from synthct.training.run import build_trainer

    base = Path(nnUNet_preprocessed) / dataset
    plans = load_plans(base, plans_name)
    dataset_json = json.loads((base / "dataset.json").read_text())
    cpu = torch.device("cpu")
    trainers: dict[str, object] = {}
    for name, augmentation in (("synthct (paper)", "paper"), ("synthct (mild)", "mild")):
        trainers[name] = build_trainer(plans, dataset_json, 0, TrainConfig(augmentation=augmentation), device=cpu)
    for name, deep_supervision in (("stock nnUNetTrainer (DS)", True), ("stock nnUNetTrainer (no DS)", False)):
        stock = nnUNetTrainer({**json.loads(json.dumps(plans)), "continue_training": False}, "3d_fullres", 0,
                              dataset_json, cpu)
        stock.enable_deep_supervision = deep_supervision
        trainers[name] = stock
    for trainer in trainers.values():
        trainer.on_train_start()
        trainer.network.train()
    return trainers


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(trainers: dict[str, object], steps: int) -> dict[str, dict[str, float]]:
    """Median seconds per fixed-batch step and per full iteration, trainers interleaved."""
    batches = {name: next(t.dataloader_train) for name, t in trainers.items()}
    step_times: dict[str, list[float]] = {name: [] for name in trainers}
    iter_times: dict[str, list[float]] = {name: [] for name in trainers}
    for round_ in range(steps + 2):
        for name, t in trainers.items():
            s = timed(lambda t=t, name=name: t.train_step(batches[name]))
            i = timed(lambda t=t: t.train_step(next(t.dataloader_train)))
            if round_ >= 2:
                step_times[name].append(s)
                iter_times[name].append(i)
        print(f"round {round_ + 1}/{steps + 2} done", file=sys.stderr, flush=True)
    return {name: {"step_s": statistics.median(step_times[name]), "iteration_s": statistics.median(iter_times[name])}
            for name in trainers}


def report(results: dict[str, dict[str, float]], setup: dict[str, object]) -> str:
    reference = results["stock nnUNetTrainer (DS)"]
    lines = [f"# train step speed ({setup['device']}, torch {setup['torch']}, nnunetv2 {setup['nnunetv2']})",
             f"network {setup['network']}, patch {setup['patch']}, batch 2, median of {setup['steps']} iterations",
             "", "| trainer | step [s] | vs stock (DS) | iteration incl. data [s] | vs stock (DS) |",
             "|---|---|---|---|---|"]
    for name, r in results.items():
        step = 100 * (r["step_s"] / reference["step_s"] - 1)
        it = 100 * (r["iteration_s"] / reference["iteration_s"] - 1)
        lines.append(f"| {name} | {r['step_s']:.3f} | {step:+.1f} % | {r['iteration_s']:.3f} | {it:+.1f} % |")
    return "\n".join(lines)


PAPER_NETWORKS = (("PlainConvUNet", False), ("PlainConvUNetUpsample", False), ("ResidualUNet", True),
                  ("ResidualUNetUpsample", True))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device, steps: int) -> float:
    for _ in range(3):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / steps


def time_network(net: torch.nn.Module, device: torch.device, patch: tuple[int, int, int], steps: int) -> dict:
    """Seconds per synthct training step (as ``SynthCTTrainerL1.train_step``) and per validation forward."""
    from synthct.training.loss import MaskedL1Loss

    cuda = device.type == "cuda"
    opt = torch.optim.SGD(net.parameters(), 1e-2, momentum=0.99, nesterov=True, weight_decay=3e-5)
    scaler = torch.GradScaler("cuda") if cuda else None
    loss_fn = MaskedL1Loss()
    x, y = torch.randn(2, 1, *patch, device=device), torch.randn(2, 1, *patch, device=device)
    seg = torch.ones(2, 1, *patch, dtype=torch.int16, device=device)

    def amp() -> contextlib.AbstractContextManager:
        return torch.autocast("cuda") if cuda else contextlib.nullcontext()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with amp():
            out = net(x)
        loss = loss_fn(out, y, seg)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
            opt.step()

    def validate() -> None:
        with torch.no_grad(), amp():
            loss_fn(net(x), y, seg)

    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    step_s = _time(step, device, steps)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else float("nan")
    return {"step_s": step_s, "val_s": _time(validate, device, steps), "peak_GiB": peak,
            "params_M": sum(p.numel() for p in net.parameters()) / 1e6}


def network_step_times(device: torch.device, patch: tuple[int, int, int], steps: int) -> dict[str, dict]:
    """:func:`time_network` for each paper-sized network (6 stages, 32-320 features), batch 2."""
    from synthct.network.architectures import synthrad_arch_kwargs
    from synthct.network.build import architecture_block, build_network

    torch.backends.cudnn.benchmark = True
    results = {}
    for name, residual in PAPER_NETWORKS:
        torch.manual_seed(0)
        net = build_network(architecture_block(name, synthrad_arch_kwargs(residual=residual)), 1, 1).to(device)
        results[name] = time_network(net, device, patch, steps)
        print(f"{name}: {results[name]}", file=sys.stderr, flush=True)
        del net
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return results


def gpu_hours(step_s: float, val_s: float, epochs: int, iterations: int = 250, val_iterations: int = 50) -> float:
    """Hours of one fold: epochs × (iterations × step + validation iterations × forward)."""
    return epochs * (iterations * step_s + val_iterations * val_s) / 3600


def network_report(results: dict[str, dict], device: torch.device, patch: tuple[int, int, int]) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    lines = [f"# synthct train step, paper networks ({name}, torch {torch.__version__}, AMP fp16 on CUDA)",
             f"patch {patch}, batch 2", "",
             "| network | params [M] | step [s] | val forward [s] | peak [GiB] | h/fold 1000 ep | h/fold 1500 ep |",
             "|---|---|---|---|---|---|---|"]
    for net, r in results.items():
        hours = [gpu_hours(r["step_s"], r["val_s"], epochs) for epochs in (1000, 1500)]
        lines.append(f"| {net} | {r['params_M']:.2f} | {r['step_s']:.4f} | {r['val_s']:.4f} | {r['peak_GiB']:.1f} | "
                     f"{hours[0]:.1f} | {hours[1]:.1f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=("unet", "resunet"), default="resunet")
    parser.add_argument("--patch", type=int, nargs=3, default=(24, 64, 64))
    parser.add_argument("--features", type=int, nargs=2, default=(16, 128), metavar=("BASE", "MAX"))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers as JSON")
    parser.add_argument("--network-only", action="store_true", help="paper networks, synthetic batch, no nnunetv2")
    parser.add_argument("--device", default="cpu", help="device of --network-only (cpu or cuda)")
    args = parser.parse_args()
    if args.network_only:
        device = torch.device(args.device)
        results = network_step_times(device, tuple(args.patch), args.steps)
        print(network_report(results, device, tuple(args.patch)))
        if args.json:
            args.json.write_text(json.dumps({"patch": args.patch, "results": results}, indent=2) + "\n")
        return 0
    from importlib.metadata import version

    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):  # nnU-Net prints a lot
        dataset, plans_name = prepare(Path(tmp), args.arch, tuple(args.patch), tuple(args.features))
        trainers = build_trainers(dataset, plans_name)
        network = type(trainers["synthct (paper)"].unwrapped_network()).__name__
        params = sum(p.numel() for p in trainers["synthct (paper)"].network.parameters())
        results = measure(trainers, args.steps)
    setup = {"device": f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
             "torch": torch.__version__, "nnunetv2": version("nnunetv2"), "python": platform.python_version(),
             "network": f"{network} ({params / 1e6:.2f} M params, features {tuple(args.features)})",
             "patch": tuple(args.patch), "steps": args.steps}
    print(report(results, setup))
    if args.json:
        args.json.write_text(json.dumps({"setup": setup, "results": results}, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
