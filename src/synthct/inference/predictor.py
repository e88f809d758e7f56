"""Model folder + image + body mask → synthetic CT in HU on the input grid.

Per case: normalise the input as the manifest says → (resample to the model spacing only if the input spacing
differs) → sliding window over all folds at once → (resample back) → HU = z·σ + μ, clipped to [-1024, 3071], air
(-1000 HU) outside the body mask, float32.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from synthct.inference.accel import AccelOptions, TileEngine, prepare_networks
from synthct.inference.cpu_threads import configure_cpu_threads
from synthct.inference.grid import working_shape
from synthct.inference.sliding_window import SlidingWindowSettings, sliding_window_predict
from synthct.network.checkpoint import load_model_folder
from synthct.network.device import resolve_device
from synthct.typing import HUArray, PathLike, SpacingZYX

if TYPE_CHECKING:
    from synthct.inference.budget import TimeBudget

LOG = logging.getLogger(__name__)
AIR_HU = -1000.0
#: Relative spacing difference above which the input is resampled to the model spacing.
SPACING_RTOL = 1e-3


@dataclass(frozen=True)
class InferenceOptions:
    """User-facing inference settings (defaults = the paper's: step 0.3, mean blending, no TTA).

    Attributes:
        step: sliding-window step as a fraction of the patch.
        blend: "mean" or "gaussian".
        tta: mirroring test-time augmentation; only allowed for models trained with mirroring.
        folds: folds to ensemble, integers or "all" (None = all in the model folder).
        tile_batch: tiles per forward pass (0 = automatic).
        amp_dtype: "float16", "bfloat16" or "float32" (CUDA only; the CPU always runs float32).
        skip_outside_mask: skip tiles that do not touch the body mask.
        device: "auto" (CUDA if available), "cpu", "cuda" or "cuda:N".
        progress: tqdm progress bar.
        cpu_threads: intra-op threads on the CPU (None = the CPUs available to this process, see
            :mod:`synthct.inference.cpu_threads`).
        accel: opt-in tile-engine switches and device resampling (:class:`~synthct.inference.accel.AccelOptions`;
            all off by default).
        time_budget: the routed per-case time budget in seconds (models.json ``time_budget``; None = none). The
            predictor does not read it: the caller resolves the case's seconds (``--time-budget`` > this >
            $SYNTHCT_TIME_BUDGET, :func:`~synthct.inference.budget.budget_seconds`) and passes an immutable
            :class:`~synthct.inference.budget.TimeBudget` to :meth:`SyntheticCTPredictor.predict`.
    """

    step: float = 0.3
    blend: str = "mean"
    tta: bool = False
    folds: tuple[int | str, ...] | None = None
    tile_batch: int = 0
    amp_dtype: str = "float16"
    skip_outside_mask: bool = True
    device: str = "auto"
    progress: bool = True
    cpu_threads: int | None = None
    accel: AccelOptions = field(default_factory=AccelOptions)
    time_budget: float | None = None


#: |z| bound of the normalised input (standard deviations): finite but huge background values (1e31 in float32,
#: 1e45 cast from float64 to float32 = inf) would overflow the network; real tissue lies within a few tens.
Z_LIMIT = 1000.0


def _bounded(z: np.ndarray) -> np.ndarray:
    """Clip the normalised input (float32) to ±:data:`Z_LIMIT` in place, counting what was clipped (logged)."""
    outside = int(np.count_nonzero(~(np.abs(z) <= Z_LIMIT)))
    if outside:
        LOG.warning("%d input voxels lie beyond ±%g standard deviations (huge background values?): clipped",
                    outside, Z_LIMIT)
        np.clip(z, -Z_LIMIT, Z_LIMIT, out=z)
    return z


def _resample_mask(mask: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """(1, Z, Y, X) float body mask → ``shape`` by nearest interpolation; if that loses the whole body (e.g. one
    thin slice of a 1 mm volume at a 2.5 mm model), every working voxel the body touches (area interpolation > 0)."""
    near = _resample(mask, shape, "nearest")
    if bool(near.any()) or not bool(mask.any()):
        return near
    LOG.warning("the body mask (%d voxels) vanishes at the model's spacing with nearest resampling: using every "
                "working voxel it touches", int(mask.sum()))
    return (F.interpolate(mask[None], size=tuple(shape), mode="area")[0] > 0).float()


def _resample(volume: torch.Tensor, shape: Sequence[int], mode: str) -> torch.Tensor:
    """(C, Z, Y, X) → (C, *shape) by trilinear (align_corners=False) or nearest interpolation."""
    kwargs = {"align_corners": False} if mode == "trilinear" else {}
    return F.interpolate(volume[None], size=tuple(shape), mode=mode, **kwargs)[0]


class _StageTimer:
    """Wall time per named stage (seconds), for the one-line log of where a prediction's time goes."""

    def __init__(self) -> None:
        self._t = self._t0 = time.perf_counter()
        self.stages: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.stages[name] = self.stages.get(name, 0.0) + now - self._t
        self._t = now

    @property
    def total(self) -> float:
        return self._t - self._t0

    def __str__(self) -> str:
        return ", ".join(f"{k} {v:.1f} s" for k, v in self.stages.items())


class SyntheticCTPredictor:
    """Loads a model folder once and predicts synthetic CTs.

    Args:
        model_dir: synthct model folder (``synthct.json`` + weights).
        options: inference options.
    """

    def __init__(self, model_dir: PathLike, options: InferenceOptions | None = None) -> None:
        self.options = options or InferenceOptions()
        self.device = resolve_device(self.options.device)
        if self.device.type == "cpu":
            configure_cpu_threads(self.options.cpu_threads)
        folds = None if self.options.folds is None else list(self.options.folds)
        self.manifest, networks = load_model_folder(model_dir, folds)
        self.fold_names = [str(f) for f in (self.manifest.folds if folds is None else folds)]
        if self.options.tta and not self.manifest.trained_with_mirroring:
            raise ValueError(f"mirroring TTA requested, but the model in {model_dir} was not trained with mirroring")
        self.networks = [net.to(self.device).eval() for net in networks]
        accel = self.options.accel
        accel.check(self.device, self.options.amp_dtype)
        self.networks = prepare_networks(self.networks, accel)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed tile shape: autotuned convolutions pay off
        target = self.manifest.target_normalization
        self.settings = SlidingWindowSettings(
            tile_size=self.manifest.patch_size,
            step=self.options.step,
            blend=self.options.blend,
            tile_batch=self.options.tile_batch,
            mirror_axes=self.manifest.mirror_axes if self.options.tta else (),
            amp_dtype=self.options.amp_dtype,
            skip_outside_mask=self.options.skip_outside_mask,
            fill_value=float(target.to_z(np.array(AIR_HU))),
            progress=self.options.progress,
        )
        self.engine = (TileEngine(self.networks, accel, self.device, self.manifest.patch_size,
                                  self.manifest.input_channels, self.settings.mirror_axes, self.options.amp_dtype)
                       if accel.engine_needed else None)

    def predict(self, image: np.ndarray, mask: np.ndarray, spacing_zyx: SpacingZYX,
                budget: TimeBudget | None = None) -> HUArray:
        """Synthesise CT for one case.

        Args:
            image: (Z, Y, X) MR or CBCT, raw scanner units, any real dtype.
            mask: (Z, Y, X) body mask, nonzero = body.
            spacing_zyx: voxel spacing (Z, Y, X) in mm.
            budget: per-case time budget; after the first tile batch it may drop TTA, then folds (logged).

        Returns:
            (Z, Y, X) float32 HU in [-1024, 3071], -1000 outside the mask, on the input grid.

        Raises:
            GridError: the spacing or size asks for a working grid beyond :mod:`synthct.inference.grid`'s limits.
        """
        if image.shape != mask.shape:
            raise ValueError(f"image shape {image.shape} differs from mask shape {mask.shape}")
        target_spacing = self.manifest.spacing
        shape = working_shape(image.shape, spacing_zyx, target_spacing)  # GridError before any allocation
        timer = _StageTimer()
        body = mask.astype(bool)
        z = torch.from_numpy(_bounded(self.manifest.input_normalization.apply(image, body)))[None]
        m = torch.from_numpy(body)[None].float()
        timer.lap("normalise")
        resample = not np.allclose(spacing_zyx, target_spacing, rtol=SPACING_RTOL, atol=0)
        if resample:
            LOG.info("resampling %s at %s mm to %s at %s mm", image.shape, tuple(spacing_zyx), tuple(shape),
                     tuple(target_spacing))
            where = self.device if self.options.accel.resample_on_device else torch.device("cpu")
            z, m = _resample(z.to(where), shape, "trilinear"), _resample_mask(m.to(where), shape)
            timer.lap("resample")
        if budget is not None and budget.fold_names is None:  # a copy: the caller's budget stays as it is
            budget = dataclasses.replace(budget, fold_names=self.fold_names)
        out = sliding_window_predict(self.networks, z, self.settings, self.device, mask=m[0].cpu().numpy() > 0.5,
                                     engine=self.engine, budget=budget)
        timer.lap("tiles")
        if resample:
            out = _resample(out.to(where), image.shape, "trilinear").cpu()
            timer.lap("resample back")
        hu = self.manifest.target_normalization.to_hu(out[0].numpy())
        hu[~body] = AIR_HU
        timer.lap("to HU")
        LOG.info("predicted %s in %.1f s on %s (%s)", image.shape, timer.total, self.device, timer)
        return hu
