"""Construct and run a trainer directly (no nnU-Net trainer discovery): ``synthct train``'s library function.

Single GPU / CPU: ``synthct train DATASET FOLD``. Several GPUs: start the same command with ``torchrun
--nproc_per_node N``; this module then joins the process group (NCCL on CUDA, gloo on CPU) and nnU-Net's own DDP code
in the trainer splits the batch over the ranks.
"""

from __future__ import annotations

import copy
import gc
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from nnunetv2.paths import nnUNet_preprocessed
from torch import distributed as dist
from torch.nn.parallel import DistributedDataParallel

from synthct.network.device import resolve_device
from synthct.network.manifest import parse_fold
from synthct.paths import DistributedEnv, distributed_env
from synthct.preprocessing.datasets import dataset_name
from synthct.preprocessing.plans import load_plans
from synthct.training.config import TrainConfig
from synthct.training.registry import get_trainer
from synthct.training.trainer import SynthCTTrainerL1

LOG = logging.getLogger(__name__)
CHECKPOINT_ORDER = ("checkpoint_latest.pth", "checkpoint_final.pth", "checkpoint_best.pth")


def build_trainer(plans: dict[str, Any], dataset_json: dict[str, Any], fold: int | str, config: TrainConfig,
                  trainer: str = "l1", configuration: str = "3d_fullres", device: torch.device | None = None,
                  continue_training: bool = False) -> SynthCTTrainerL1:
    """A trainer for ``fold``; ``plans['continue_training']`` is set (stock pops it) and ``config`` recorded."""
    plans = copy.deepcopy(plans)
    if configuration not in plans.get("configurations", {}):
        raise ValueError(f"configuration {configuration!r} not in plans (has {sorted(plans['configurations'])})")
    plans["continue_training"] = continue_training
    plans["synthct"]["train_config"] = config.to_json()
    trainer_class = get_trainer(trainer)
    stage = getattr(trainer_class, "STAGE_LABEL", "L1 stage")
    description = str(plans["synthct"].get("description", ""))
    if stage not in description:  # the exported synthct.json says which stage trained it
        plans["synthct"]["description"] = (description.replace("L1 stage", stage) if "L1 stage" in description
                                           else f"{description}, {stage}".lstrip(", "))
    return trainer_class(plans, configuration, fold, dataset_json, device or torch.device("cpu"))


def find_checkpoint(output_folder: str | Path, order: tuple[str, ...] = CHECKPOINT_ORDER) -> Path | None:
    """The checkpoint to resume from: latest (written during training), else final, else best."""
    for name in order:
        path = Path(output_folder) / name
        if path.is_file():
            return path
    return None


def _join_process_group(env: DistributedEnv | None, device: torch.device) -> bool:
    """Initialise the torchrun process group if needed; returns whether this call initialised it."""
    if env is None or env.world_size < 2 or dist.is_initialized():
        return False
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    LOG.info("joined DDP group: rank %d of %d on %s", env.rank, env.world_size, device)
    return True


#: Folds of nnU-Net's default split (``splits_final.json`` is created with this many when absent).
N_FOLDS = 5


def check_fold(fold: int | str, n_cases: int, splits_file: Path | None, dataset: str, command: str) -> None:
    """Refuse a fold that nnU-Net's split cannot provide, before any output folder exists.

    Args:
        fold: 0-4 or "all".
        n_cases: training cases of the dataset (``numTraining``).
        splits_file: ``splits_final.json`` when it exists (its number of folds wins), else None.
        dataset: dataset name, for the message.
        command: the command with fold ``all``, for the hint.

    Raises:
        ValueError: fold out of range, or fewer cases than folds (with the hint to use fold ``all``).
    """
    if fold == "all":
        return
    n_folds = len(json.loads(splits_file.read_text())) if splits_file is not None else N_FOLDS
    hint = (f"train fold 'all' instead ({command}; every case trains, there is no held-out validation), or convert "
            "with --region all to pool the regions into one dataset")
    if splits_file is None and n_cases < N_FOLDS:
        raise ValueError(f"fold {fold} needs nnU-Net's {N_FOLDS}-fold split, which needs at least {N_FOLDS} training "
                         f"cases; {dataset} has {n_cases}: {hint}")
    if not 0 <= int(fold) < n_folds:
        raise ValueError(f"fold {fold} does not exist: {dataset} has folds 0-{n_folds - 1}"
                         f"{f' ({splits_file})' if splits_file else ''}; or {hint}")


def train(dataset: str | int, fold: int | str, plans_name: str = "synthctResUNetPlans",
          config: TrainConfig | None = None, trainer: str = "l1", configuration: str = "3d_fullres",
          device: str = "auto", continue_training: bool = False, validate: bool = True,
          validation_only: bool = False, validate_best: bool = False) -> Path:
    """Train (or resume, or only validate) one fold of a preprocessed dataset; returns the fold's output folder.

    Args:
        dataset: dataset id or name (``Dataset511_SynthRAD2025Task1HN``).
        fold: 0-4 (nnU-Net's 5-fold split in ``splits_final.json``) or "all".
        plans_name: plans written by ``synthct plan`` (``synthctResUNetPlans`` or ``synthctUNetPlans``).
        config: hyper-parameters (default: the paper's, 1000 epochs).
        trainer: registry name (``l1``).
        configuration: nnU-Net configuration (``3d_fullres``).
        device: "auto", "cuda", "cuda:N" or "cpu".
        continue_training: resume from the latest (else final, else best) checkpoint of this fold.
        validate: run the final validation (sCT + MAE/PSNR/MS-SSIM of the held-out cases) after training.
        validation_only: skip training, load ``checkpoint_final`` (``checkpoint_best`` with ``validate_best``).
        validate_best: validate the best (lowest EMA MAE) checkpoint instead of the final weights.
    """
    config = config or TrainConfig()
    fold = parse_fold(fold)
    name = dataset_name(dataset)
    base = Path(nnUNet_preprocessed) / name
    plans = load_plans(base, plans_name)
    dataset_json = json.loads((base / "dataset.json").read_text())
    splits = base / "splits_final.json"
    check_fold(fold, int(dataset_json.get("numTraining", 0)), splits if splits.is_file() else None, name,
               f"synthct train {dataset} all")
    env = distributed_env()
    torch_device = resolve_device(device, env.local_rank if env else 0)
    joined = _join_process_group(env, torch_device)
    if torch_device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.set_num_threads(1)
    runner: SynthCTTrainerL1 | None = None
    finished = False
    try:
        runner = build_trainer(plans, dataset_json, fold, config, trainer, configuration, torch_device,
                               continue_training and not validation_only)
        if validation_only:
            _load(runner, "checkpoint_best.pth" if validate_best else "checkpoint_final.pth")
        else:
            if continue_training:
                checkpoint = find_checkpoint(runner.output_folder)
                if checkpoint is None:
                    LOG.warning("no checkpoint in %s to continue from; starting from scratch", runner.output_folder)
                else:
                    LOG.info("resuming from %s", checkpoint)
                    runner.load_checkpoint(str(checkpoint))
            runner.run_training()
            if validate and validate_best:
                _load(runner, "checkpoint_best.pth")
        if validate or validation_only:
            runner.perform_actual_validation()
        finished = True
    finally:
        if joined:
            _leave_process_group(runner, finished)
    return Path(runner.output_folder)


#: Seconds the main thread sleeps (GIL released) between the last collective and the group's teardown.
TEARDOWN_GRACE_S = 0.2


def _leave_process_group(runner: SynthCTTrainerL1 | None, finished: bool) -> None:
    """Leave the torchrun group without the teardown deadlock seen before (0 hangs in 15 runs after this change).

    Measured here (torch 2.13, gloo, 2 CPU ranks): 2 of 6 runs hung for ever at exit. The main thread
    freed the last reference to the group (through the DDP reducer) while holding the GIL, and the group's
    destructor joined a gloo worker thread that was itself waiting for the GIL to release the tensors of the last
    ``all_gather_object``. So, on success: a barrier (it waits for all earlier collectives, with the GIL
    released), the DDP wrapper dropped while the group is still registered, a short GIL-free pause for the workers
    to finish, and only then ``destroy_process_group``. After a failure the barrier is skipped: the other ranks may
    never reach it (torchrun stops them)."""
    if finished:
        dist.barrier()
    if runner is not None and isinstance(runner.network, DistributedDataParallel):
        runner.network = runner.network.module
    gc.collect()
    time.sleep(TEARDOWN_GRACE_S)
    dist.destroy_process_group()


def _load(runner: SynthCTTrainerL1, name: str) -> None:
    path = Path(runner.output_folder) / name
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    runner.load_checkpoint(str(path))
