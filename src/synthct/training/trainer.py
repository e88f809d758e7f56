"""``SynthCTTrainerL1``: stage-1 training (masked L1 on the normalised CT) as one thin ``nnUNetTrainer`` subclass.

What stays stock: the constructor signature, folders and logs, the 5-fold split (``splits_final.json``), SGD
(momentum 0.99, Nesterov; ``optimizer="adamw"`` swaps in stock ``nnUNetTrainerAdam``'s AdamW) with PolyLR, gradient
clipping at 12, AMP + GradScaler on CUDA, ``torch.compile`` (``nnUNet_compile``; ``TrainConfig.compile`` can force
a mode or turn it off), DDP, checkpoint format,
``progress.png``, ``checkpoint_latest``/``checkpoint_best``/``checkpoint_final``, resuming.

What changes:

* network: input channels from the plans' ``synthct`` block, one output, no deep supervision;
* data: :class:`~synthct.training.dataloading.SynthCTDataLoader`, augmentation presets ``paper`` / ``mild``;
* loss: L1 in fp32 on the normalised target z = (clip(HU) − μ) / σ over valid voxels (seg ≥ 0);
* validation epochs log ``mean_fg_dice = −MAE_HU`` (MAE inside the body on the validation patches), so nnU-Net's
  EMA-based ``checkpoint_best`` is the checkpoint with the lowest smoothed validation MAE and ``progress.png`` plots
  the validation MAE in HU (:mod:`synthct.training.progress`; stock would label it "pseudo dice");
* final validation: sliding-window sCT of every held-out case, written in HU on the original grid, with MAE / PSNR /
  MS-SSIM in ``validation/summary.json``.

Hyper-parameters come from :class:`~synthct.training.config.TrainConfig` in ``plans['synthct']['train_config']``
(set by :mod:`synthct.training.run`); they are saved with the plans and in ``fold_k/train_config.json``.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterator
from pathlib import Path
from time import time
from typing import Any

import numpy as np
import torch
from batchgenerators.dataloading.nondet_multi_threaded_augmenter import NonDetMultiThreadedAugmenter
from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter
from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import distributed as dist
from torch import nn
from torch._dynamo import OptimizedModule
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from synthct.contracts.normalization import InputNormalization, TargetNormalization
from synthct.network.build import build_network
from synthct.network.checkpoint import load_state_dict
from synthct.training import validation
from synthct.training.config import TRAIN_CONFIG_ENV, TrainConfig, with_env_overrides
from synthct.training.dataloading import (
    LEFT_RIGHT_AXIS,
    MILD_ROTATION,
    SynthCTDataLoader,
    initial_patch_size,
    is_anisotropic,
    training_transforms,
)
from synthct.training.loss import MaskedL1Loss
from synthct.training.progress import plot_progress

_CUDA = torch.device("cuda")


def gather_ranks(value: Any) -> list[Any]:
    """``[value]`` without DDP, the values of every rank under DDP."""
    if not (dist.is_available() and dist.is_initialized()):
        return [value]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (data sampling runs in the main process with
    ``nnUNet_n_proc_DA=0``; worker processes of the multi-threaded augmenter draw their own seeds)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def freeze_deep_supervision_heads(network: nn.Module) -> int:
    """Set ``requires_grad=False`` on the decoder's lower-resolution output heads (``seg_layers[:-1]``), which never
    take part in the loss without deep supervision; returns how many tensors were frozen.

    Without this, DDP's reducer waits for their gradients and the second iteration of a multi-rank run fails
    ("Expected to have finished reduction in the prior iteration"). Single-process training is unchanged: those
    parameters got no gradient, so the optimizer already left them alone."""
    heads = getattr(getattr(network, "decoder", None), "seg_layers", None)
    if heads is None or len(heads) < 2:
        return 0
    frozen = [p for layer in list(heads)[:-1] for p in layer.parameters()]
    for p in frozen:
        p.requires_grad_(False)
    return len(frozen)


def state_mismatch(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor], shown: int = 3) -> str:
    """A short description of how ``got`` differs from ``expected`` (counts + the first ``shown`` keys), or ""."""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [f"{k} {tuple(got[k].shape)} vs {tuple(expected[k].shape)}" for k in expected
              if k in got and tuple(got[k].shape) != tuple(expected[k].shape)]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("with another shape", shapes)):
        if items:
            more = f", ... {len(items) - shown} more" if len(items) > shown else ""
            parts.append(f"{len(items)} key(s) {label} ({', '.join(items[:shown])}{more})")
    return "; ".join(parts)


class SynthCTTrainerL1(nnUNetTrainer):
    """Stage-1 L1 trainer. Constructor as stock nnU-Net 2.8.1 (set ``plans['continue_training']`` first)."""

    #: How the exported model's description names the training stage.
    STAGE_LABEL = "L1 stage"
    #: Set by nnU-Net's base class (untyped): the network (or its DDP / torch.compile wrapper), whether
    #: :meth:`initialize` ran, and the best EMA validation score so far.
    network: Any
    was_initialized: bool
    _best_ema: float | None

    def __init__(self, plans: dict, configuration: str, fold: int | str, dataset_json: dict,
                 device: torch.device = _CUDA) -> None:
        super().__init__(plans, configuration, fold, dataset_json, device)
        if self.is_ddp and device.type != "cuda":  # stock forces cuda:<rank> under DDP; keep CPU/gloo runs on CPU
            self.device = device
            self.grad_scaler = None
        block = self.plans_manager.plans.get("synthct")
        if not isinstance(block, dict):
            raise ValueError(f"plans {self.plans_manager.plans_name!r} have no 'synthct' block; plan with "
                             f"`synthct plan`")
        self.target_normalization = TargetNormalization.from_json(block["target_normalization"])
        self.n_inputs = int(block.get("input_channels", 1))
        self.enable_deep_supervision = False
        config, self.config_overrides = with_env_overrides(TrainConfig.from_json(block.get("train_config", {})))
        self.apply_config(config)

    # ----------------------------------------------------------------------------------------------- configuration
    def apply_config(self, config: TrainConfig) -> None:
        """Set the hyper-parameters of ``config`` (before :meth:`initialize`) and record it in the plans."""
        if self.was_initialized:
            raise RuntimeError("apply_config must be called before the trainer is initialised")
        self.train_config = config
        self.num_epochs = config.epochs
        self.num_iterations_per_epoch = config.iterations_per_epoch
        self.num_val_iterations_per_epoch = config.val_iterations_per_epoch
        self.initial_lr = config.initial_lr
        self.weight_decay = config.weight_decay
        self.oversample_foreground_percent = config.oversample_foreground_percent
        self.save_every = config.save_every
        self.plans_manager.plans["synthct"]["train_config"] = config.to_json()

    @staticmethod
    def build_network_architecture(plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                                   num_input_channels: int, num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        """The plans' network with the ``synthct`` input channels and one output, no deep supervision (the channel
        counts nnU-Net passes include the target and the labels and are ignored)."""
        block = plans_manager.plans.get("synthct", {})
        architecture = {"network_class_name": configuration_manager.network_arch_class_name,
                        "arch_kwargs": configuration_manager.network_arch_init_kwargs,
                        "_kw_requires_import": configuration_manager.network_arch_init_kwargs_req_import}
        network = build_network(architecture, int(block.get("input_channels", 1)), 1)
        initialize = getattr(network, "initialize", None)  # dynamic_network_architectures' weight init
        if initialize is not None:
            network.apply(initialize)
        return network

    def initialize(self) -> None:
        if self.was_initialized:
            raise RuntimeError("the trainer is already initialised")
        self._set_batch_size_and_oversample()
        self.num_input_channels = self.n_inputs
        self.network = self.build_network_architecture(self.plans_manager, self.configuration_manager,
                                                       self.n_inputs, 1, False).to(self.device)
        freeze_deep_supervision_heads(self.network)
        if self.train_config.channels_last:
            self.print_to_log_file("Using the channels-last 3-D memory format")
            self.network = self.network.to(memory_format=torch.channels_last_3d)
        mode = self.compile_mode()
        if mode is not None:
            self.print_to_log_file(f"Using torch.compile (mode {mode})...")
            self.network = torch.compile(self.network, mode=None if mode == "default" else mode)
        self.optimizer, self.lr_scheduler = self.configure_optimizers()
        if self.is_ddp:
            self.network = DDP(self.network, device_ids=[self.local_rank] if self.device.type == "cuda" else None)
        self.loss = MaskedL1Loss(self.train_config.background_weight)
        self.dataset_class = infer_dataset_class(self.preprocessed_dataset_folder)
        if self.train_config.init_checkpoint:
            self.load_init_weights(self.train_config.init_checkpoint)
        self.was_initialized = True
        self.logger.update_config({"hparas": {**self.train_config.to_json(), "batch_size": self.batch_size}})

    def load_init_weights(self, path: str | Path) -> None:
        """Strictly load the weights of a stage-1 checkpoint or an exported model (output layer included)."""
        path = Path(path)
        state = load_state_dict(path)
        network = self.unwrapped_network()
        problem = state_mismatch(network.state_dict(), state)
        if problem:
            raise ValueError(f"init checkpoint {path} does not match the network of plans "
                             f"{self.plans_manager.plans_name!r}: {problem}; pass the stage-1 checkpoint trained "
                             "with these plans (fold_k/checkpoint_final.pth of SynthCTTrainerL1__<plans>__...)")
        network.load_state_dict(state, strict=True)
        self.print_to_log_file(f"initialised from stage-1 checkpoint {path.resolve()} (strict, seg_layers included; "
                               f"fresh optimizer, initial lr {self.initial_lr})")

    def compile_mode(self) -> str | None:
        """The ``torch.compile`` mode of this run, or None: ``train_config.compile`` "stock" follows stock nnU-Net
        (``nnUNet_compile``; never on the CPU), "off" never compiles, a mode compiles on any device."""
        choice = self.train_config.compile
        if choice == "stock":
            return "default" if self._do_i_compile() else None
        return None if choice == "off" else choice

    def plot_network_architecture(self) -> None:
        """Skipped: stock nnU-Net tries the unmaintained ``hiddenlayer`` package and logs ``No module named
        'hiddenlayer'`` in every training log (harmless, but it reads like an error)."""

    @property
    def validation_cases(self) -> str:
        """What the validation numbers are computed on: held-out cases, or for fold ``all`` the training cases."""
        return "TRAINING cases (fold all: nothing held out)" if str(self.fold) == "all" else "held-out cases"

    def configure_optimizers(self) -> tuple[torch.optim.Optimizer, PolyLRScheduler]:
        """Stock SGD + PolyLR, or AdamW (AMSGrad) + PolyLR as stock ``nnUNetTrainerAdam`` (``optimizer="adamw"``)."""
        if self.train_config.optimizer == "sgd":
            return super().configure_optimizers()
        optimizer = torch.optim.AdamW(self.network.parameters(), lr=self.initial_lr, weight_decay=self.weight_decay,
                                      amsgrad=True)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)

    def unwrapped_network(self) -> nn.Module:
        """The plain network under DDP and ``torch.compile`` wrappers."""
        network = self.network.module if isinstance(self.network, DDP) else self.network
        return network._orig_mod if isinstance(network, OptimizedModule) else network

    def set_deep_supervision_enabled(self, enabled: bool) -> None:
        unet: Any = self.unwrapped_network()  # a dynamic_network_architectures U-Net (untyped decoder)
        unet.decoder.deep_supervision = enabled

    # ------------------------------------------------------------------------------------------------------- data
    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self) -> tuple:
        """(rotation, dummy 2-D, initial patch, mirror axes) of the preset; never nnU-Net's ±180° rotation."""
        patch = self.configuration_manager.patch_size
        mild = self.train_config.augmentation == "mild"
        mirror_axes = (LEFT_RIGHT_AXIS,) if self.train_config.mirror_lr else ()
        self.inference_allowed_mirroring_axes = mirror_axes or None
        return (MILD_ROTATION if mild else None, mild and is_anisotropic(patch),
                initial_patch_size(patch, self.train_config.augmentation), mirror_axes)

    def get_dataloaders(self) -> tuple[Iterator, Iterator]:
        if self.dataset_class is None:
            self.dataset_class = infer_dataset_class(self.preprocessed_dataset_folder)
        patch = self.configuration_manager.patch_size
        _, _, initial, mirror_axes = self.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        norm = InputNormalization.from_json(self.plans_manager.plans["synthct"]["input_normalization"])
        transforms = training_transforms(patch, self.train_config.augmentation, mirror_axes, norm,
                                         self.configuration_manager.spacing, self.n_inputs)
        dataset_tr, dataset_val = self.get_tr_and_val_datasets()
        oversample, n_inputs = self.oversample_foreground_percent, self.n_inputs
        dl_tr = SynthCTDataLoader(dataset_tr, self.batch_size, initial, patch, self.label_manager,
                                  oversample_foreground_percent=oversample, transforms=transforms, n_inputs=n_inputs)
        dl_val = SynthCTDataLoader(dataset_val, self.batch_size, patch, patch, self.label_manager,
                                   oversample_foreground_percent=oversample, transforms=None, n_inputs=n_inputs)
        n_proc = get_allowed_n_proc_DA()
        if n_proc == 0:
            loaders = SingleThreadedAugmenter(dl_tr, None), SingleThreadedAugmenter(dl_val, None)
        else:
            pin = self.device.type == "cuda"
            loaders = (NonDetMultiThreadedAugmenter(dl_tr, None, n_proc, max(6, n_proc // 2), None, pin, 0.002),
                       NonDetMultiThreadedAugmenter(dl_val, None, max(1, n_proc // 2), max(3, n_proc // 4), None,
                                                    pin, 0.002))
        for loader in loaders:
            next(loader)
        return loaders

    def on_train_start(self) -> None:
        if self.train_config.seed is not None:  # before the data loaders draw their first batches
            seed_everything(self.train_config.seed + self.local_rank)
        super().on_train_start()
        if self.config_overrides:
            self.print_to_log_file(f"train config overridden by ${TRAIN_CONFIG_ENV}: {self.config_overrides}")
        if self.local_rank == 0:
            (Path(self.output_folder) / "train_config.json").write_text(
                json.dumps(self.train_config.to_json(), indent=2) + "\n")

    # ----------------------------------------------------------------------------------------------------- steps
    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type) if self.device.type == "cuda" else contextlib.nullcontext()

    def _to_device(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(input, target z, target HU clipped, seg) on the device; the target is normalised here, in fp32."""
        data = batch["data"].to(self.device, non_blocking=True)
        if self.train_config.channels_last:
            data = data.contiguous(memory_format=torch.channels_last_3d)
        hu = batch["target"].to(self.device, non_blocking=True).float().clamp(*self.target_normalization.clip)
        seg = batch["seg"].to(self.device, non_blocking=True)
        z = (hu - self.target_normalization.mean) / self.target_normalization.std
        return data, z, hu, seg

    def train_step(self, batch: dict) -> dict:
        data, z, _, seg = self._to_device(batch)
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            output = self.network(data)
        loss = self.loss(output, z, seg)
        self._optimizer_step(loss)
        return {"loss": float(loss.detach().cpu())}

    def _optimizer_step(self, loss: torch.Tensor) -> None:
        """Backward, gradient clipping at 12 and the optimizer step, through the GradScaler when AMP is on (stock)."""
        if self.grad_scaler is not None:
            self.grad_scaler.scale(loss).backward()
            self.grad_scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.optimizer.step()

    def on_train_epoch_end(self, train_outputs: list[dict]) -> None:
        losses = [v for rank in gather_ranks([o["loss"] for o in train_outputs]) for v in rank]
        self.logger.log("train_losses", float(np.mean(losses)), self.current_epoch)

    def validation_step(self, batch: dict) -> dict:
        data, z, hu, seg = self._to_device(batch)
        with torch.no_grad(), self._autocast():
            output = self.network(data)
        loss = self.loss(output, z, seg)
        norm = self.target_normalization
        pred_hu = (output.float() * norm.std + norm.mean).clamp(*norm.clip)
        body = seg == 1
        error = ((pred_hu - hu).abs() * body).sum()
        return {"loss": float(loss.cpu()), "abs_error_hu": float(error.cpu()), "n_body": int(body.sum().cpu())}

    def on_validation_epoch_end(self, val_outputs: list[dict]) -> None:
        gathered = gather_ranks([(o["loss"], o["abs_error_hu"], o["n_body"]) for o in val_outputs])
        rows = [row for rank in gathered for row in rank]
        n_body = sum(r[2] for r in rows)
        mae_hu = sum(r[1] for r in rows) / n_body if n_body else float("nan")
        self.logger.log("mean_fg_dice", -mae_hu, self.current_epoch)
        self.logger.log("dice_per_class_or_region", [-mae_hu], self.current_epoch)
        self.logger.log("val_losses", float(np.mean([r[0] for r in rows])), self.current_epoch)

    def on_epoch_end(self) -> None:
        """Stock bookkeeping (timestamps, latest/best checkpoints, progress.png) with MAE wording."""
        epoch = self.current_epoch
        self.logger.log("epoch_end_timestamps", time(), epoch)
        get = self.logger.get_value
        self.print_to_log_file(f"train_loss {get('train_losses', -1):.4f}, val_loss {get('val_losses', -1):.4f}, "
                               f"val MAE (body, patches of {self.validation_cases}) {-get('mean_fg_dice', -1):.1f} "
                               f"HU, EMA {-get('ema_fg_dice', -1):.1f} HU")
        seconds = get("epoch_end_timestamps", -1) - get("epoch_start_timestamps", -1)
        self.print_to_log_file(f"Epoch time: {seconds:.2f} s")
        if (epoch + 1) % self.save_every == 0 and epoch != self.num_epochs - 1:
            self.save_checkpoint(str(Path(self.output_folder) / "checkpoint_latest.pth"))
        ema = get("ema_fg_dice", -1)
        if self._best_ema is None or ema > self._best_ema:
            self._best_ema = float(ema)
            self.print_to_log_file(f"New best EMA validation MAE: {-ema:.2f} HU")
            self.save_checkpoint(str(Path(self.output_folder) / "checkpoint_best.pth"))
        if self.local_rank == 0:
            plot_progress(self.logger.get_checkpoint(), Path(self.output_folder) / "progress.png")
        self.current_epoch += 1

    # ------------------------------------------------------------------------------------------ final validation
    def perform_actual_validation(self, save_probabilities: bool = False) -> dict | None:
        """Predict every held-out case (HU .mha on the original grid in ``validation/``) and write
        ``validation/summary.json`` with MAE / PSNR / MS-SSIM. Returns the summary on rank 0."""
        network = self.unwrapped_network().eval()
        _, val_keys = self.do_split()
        if self.is_ddp:
            val_keys = val_keys[self.local_rank::dist.get_world_size()]
        dataset = self.dataset_class(self.preprocessed_dataset_folder, val_keys)
        out_dir = Path(self.output_folder) / "validation"
        out_dir.mkdir(parents=True, exist_ok=True)
        norm = self.target_normalization
        settings = validation.window_settings(tuple(self.configuration_manager.patch_size),
                                              self.train_config.val_tile_step, norm)
        scores = []
        for key in tqdm(dataset.identifiers, desc="final validation", unit="case", disable=self.local_rank != 0):
            data, seg, _, properties = dataset.load_case(key)
            data, body = np.asarray(data[:]), np.asarray(seg[0]) > 0
            hu = validation.predict_case_hu(network, data[: self.n_inputs], body, settings, norm, self.device)
            reference = np.clip(data[self.n_inputs], *norm.clip)
            scores.append(validation.score_case(key, reference, hu, body))
            original = validation.to_original_grid(hu, properties, self.plans_manager.transpose_backward)
            validation.write_case(original, properties, out_dir / f"{key}{self.dataset_json['file_ending']}")
            self.print_to_log_file(f"validation {key}: MAE {scores[-1].mae_hu:.1f} HU, PSNR {scores[-1].psnr_db:.2f} "
                                   f"dB, MS-SSIM {scores[-1].ms_ssim:.4f}")
        scores = [s for rank in gather_ranks(scores) for s in rank]
        if self.local_rank != 0:
            return None
        summary = validation.write_summary(scores, out_dir / "summary.json", {
            "fold": self.fold, "epoch": self.current_epoch, "tile_step": self.train_config.val_tile_step,
            "validated_on": self.validation_cases})
        for key, value in summary["mean"].items():
            self.logger.log_summary(f"final_val/{key}", value)
        self.print_to_log_file(f"Validation on {self.validation_cases}: mean MAE {summary['mean']['mae_hu']} HU, "
                               f"PSNR {summary['mean']['psnr_db']} dB over {len(scores)} cases")
        return summary
