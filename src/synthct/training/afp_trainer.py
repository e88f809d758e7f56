"""``SynthCTTrainerAFP``: stage-2 fine-tuning with masked L1 + Anatomical Feature Prioritized (AFP) loss.

L = λ_L1 · masked L1 (normalised CT) + w_AFP · AFP(ŷ, y), with the frozen segmentation extractor of
``TrainConfig.afp.afp_extractor`` (:func:`~synthct.losses.feature_extractor.load_feature_extractor`).

Differences to :class:`~synthct.training.trainer.SynthCTTrainerL1`:

* the network is initialised from ``TrainConfig.init_checkpoint`` (a stage-1 ``checkpoint_*.pth``) with a **strict**
  load of its ``network_weights``, output layer (``seg_layers``) included — stock ``load_pretrained_weights`` drops
  ``seg_layers`` and is not used; the path is written to the training log;
* optimizer and PolyLR are fresh (built by ``initialize`` as in stage 1), from ``initial_lr`` (default 1e-3);
* the AFP term runs in float32 with autocast disabled (the network output is upcast), the extractor lives on the
  trainer's device and stays frozen and in eval mode;
* validation epochs still score masked L1 / MAE, so checkpoint selection is unchanged.

Use :func:`afp_config` for the fine-tune defaults (500 epochs, lr 1e-3, λ_L1 = 5).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from synthct.losses.afp import AFPLoss
from synthct.losses.feature_extractor import load_feature_extractor
from synthct.training.config import AFPConfig, TrainConfig
from synthct.training.trainer import SynthCTTrainerL1, gather_ranks, state_mismatch

LOG = logging.getLogger(__name__)
__all__ = ["SynthCTTrainerAFP", "spacing_warning", "state_mismatch"]  # state_mismatch: re-exported (it moved)

#: Fine-tune defaults that differ from stage 1.
AFP_DEFAULTS: dict[str, Any] = {"epochs": 500, "initial_lr": 1e-3, "l1_weight": 5.0}


def afp_config(**changes: Any) -> TrainConfig:
    """TrainConfig with the fine-tune defaults, then ``changes`` (``None`` values ignored)."""
    return TrainConfig().updated(**AFP_DEFAULTS).updated(**changes)


def spacing_warning(extractor_spacing: Sequence[float], plans_spacing: Sequence[float],
                    rtol: float = 1e-3) -> str:
    """A warning when the extractor was trained at another spacing (Z, Y, X mm) than the synthesis plans' ("" when
    they agree): AFP then resamples every patch, so the features are not those the extractor learnt at."""
    if all(abs(e - p) <= rtol * max(abs(p), 1e-9) for e, p in zip(extractor_spacing, plans_spacing, strict=True)):
        return ""
    shown = [f"{float(v):g}" for v in plans_spacing]
    return (f"the AFP extractor was trained at {[float(v) for v in extractor_spacing]} mm (z, y, x), the plans' "
            f"synthesis spacing is {[float(v) for v in plans_spacing]} mm: every patch is resampled for the loss; "
            f"train the extractor at the plans' spacing (synthct extractor train ... --spacing {' '.join(shown)})")


class SynthCTTrainerAFP(SynthCTTrainerL1):
    """Stage-2 fine-tune trainer (see the module docstring). Constructor as stock nnU-Net."""

    #: How the exported model's description names the training stage.
    STAGE_LABEL = "L1 + AFP fine-tune (stage 2)"

    @property
    def afp_config(self) -> AFPConfig:
        """The AFP settings of the train config. Raises ValueError when the config has none."""
        if self.train_config.afp is None:
            raise ValueError("SynthCTTrainerAFP needs train_config.afp_extractor (extractor results folder)")
        return self.train_config.afp

    def initialize(self) -> None:
        config = self.afp_config
        if not self.train_config.init_checkpoint:
            raise ValueError("SynthCTTrainerAFP needs train_config.init_checkpoint (stage-1 checkpoint)")
        super().initialize()  # loads init_checkpoint (SynthCTTrainerL1.load_init_weights)
        fold = config.afp_fold if config.afp_fold == "all" else int(config.afp_fold)
        extractor = load_feature_extractor(config.afp_extractor, fold, config.afp_checkpoint,
                                           init=config.afp_extractor_init)
        extractor = extractor.to(self.device).eval()  # frozen (requires_grad False) and always in eval mode
        warning = spacing_warning(extractor.spacing, self.configuration_manager.spacing)
        if warning:
            LOG.warning("%s", warning)
            self.print_to_log_file(f"WARNING: {warning}")
        self.afp = AFPLoss(extractor, self.target_normalization, data_spacing=self.configuration_manager.spacing,
                           masked=config.afp_masked, feature_norm=config.afp_feature_norm)
        self.print_to_log_file(f"AFP extractor {config.afp_extractor} (fold {fold}, {config.afp_checkpoint}, "
                               f"{config.afp_extractor_init} weights), "
                               f"{len(extractor.taps)} taps; L = {config.l1_weight} * L1 + {config.afp_weight} * AFP")

    def compute_loss(self, output: torch.Tensor, z: torch.Tensor, seg: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(total, L1, AFP), each float32; AFP with autocast disabled. With ``afp_weight`` 0 (the L1 control of the
        AFP experiment) the extractor is not run and the AFP term is reported as 0."""
        l1 = self.loss(output, z, seg)
        weights = self.afp_config
        if weights.afp_weight == 0:
            return weights.l1_weight * l1, l1, torch.zeros((), device=l1.device)
        with torch.autocast(self.device.type, enabled=False):
            afp = self.afp(output.float(), z.float(), valid=seg >= 0, body=seg == 1)
        total = weights.l1_weight * l1 + weights.afp_weight * afp
        return total, l1, afp

    def train_step(self, batch: dict) -> dict:
        data, z, _, seg = self._to_device(batch)
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            output = self.network(data)
        loss, l1, afp = self.compute_loss(output, z, seg)
        self._optimizer_step(loss)
        return {"loss": float(loss.detach().cpu()), "l1": float(l1.detach().cpu()), "afp": float(afp.detach().cpu())}

    def on_train_epoch_end(self, train_outputs: list[dict]) -> None:
        super().on_train_epoch_end(train_outputs)
        rows = [r for rank in gather_ranks([(o["l1"], o["afp"]) for o in train_outputs]) for r in rank]
        self.last_train_terms = {"l1": float(np.mean([r[0] for r in rows])),
                                 "afp": float(np.mean([r[1] for r in rows]))}
        self.print_to_log_file(f"train L1 {self.last_train_terms['l1']:.4f}, AFP {self.last_train_terms['afp']:.4f}")
