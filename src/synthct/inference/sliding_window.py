"""Sliding-window driver: where the tiles are, batching, float32 stitching, mask-aware tile skipping.

The TorchIO sampler/aggregator split: :mod:`~synthct.inference.tiling` says *where* the tiles are, this module puts
the tile outputs back (:func:`_stitch`), and :class:`~synthct.inference.runner.EnsembleRunner` says *what* each tile
batch's output is (fold ensemble, mirroring TTA, time budget, tile engine). The stitching loop calls
``runner(index, x)`` and knows nothing about networks, flips or budgets.

Numerical contract (tested in ``tests/inference``):

* Sums and weights are accumulated in **float32** whatever the network's dtype; autocast (fp16/bf16) is active only
  inside the forward pass and only on CUDA; on the CPU everything is float32. (Stock nnU-Net 2.8.1 accumulates in
  fp16: ~10 HU error at step 0.3 with mean blending, ~135 HU with Gaussian blending.)
* Weight maps are never zero; a voxel's output is ``Σ w·y / Σ w`` over the computed tiles covering it.
* With ``skip_outside_mask`` a tile is computed only if it touches the mask. Every voxel inside the mask is covered only
  by tiles that touch the mask, so inside the mask the result equals computing every tile; voxels covered by no
  computed tile get ``fill_value``.
* A fold ensemble (several networks) and mirroring TTA are averaged per tile, which equals averaging whole-volume
  predictions (blending is linear and every member sees the same tiles), without re-preparing the volume.
* CUDA out-of-memory: the run is retried with half the tile batch down to 1, then with accumulators and the image on
  the CPU. Each retry is logged; the result is the same.

No nnunetv2 / dynamic_network_architectures imports here.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from synthct.inference.blending import BLEND_MODES, weight_map
from synthct.inference.ensemble import AMP_DTYPES, Network, ensemble_forward, flip_sets
from synthct.inference.runner import BatchEngine, EnsembleRunner
from synthct.inference.tiling import TileSlices, centred_padding, plan_tiles

if TYPE_CHECKING:
    from synthct.inference.budget import TimeBudget

LOG = logging.getLogger(__name__)
#: ``runner(index, x)``: the output (B, C_out, *tile) float32 of tile batch ``index`` (B, C_in, *tile).
TileRunner = Callable[[int, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SlidingWindowSettings:
    """Settings of one sliding-window run.

    Attributes:
        tile_size: (Z, Y, X) tile size in voxels (the model's patch size).
        step: tile step as a fraction of the tile size, in (0, 1] (paper: 0.3).
        blend: "mean" (paper) or "gaussian".
        sigma_scale: Gaussian σ as a fraction of the tile size.
        tile_batch: tiles per forward pass; 0 chooses automatically (from free GPU memory on CUDA, 2 on the CPU).
        mirror_axes: spatial axes (0 = Z, 1 = Y, 2 = X) for mirroring TTA; () disables it.
        amp_dtype: "float16", "bfloat16" or "float32" (= no autocast). Used on CUDA only.
        accumulate_on_device: keep image and accumulators on the compute device (falls back to CPU on OOM).
        skip_outside_mask: skip tiles that do not touch the mask (when a mask is given).
        pad_value: value used to pad images smaller than a tile (normalised input units).
        fill_value: output value where no computed tile covers a voxel (outside the mask only).
        progress: tile progress: a tqdm bar on a terminal, periodic INFO lines on a log (:class:`TileProgress`).
    """

    tile_size: tuple[int, int, int]
    step: float = 0.3
    blend: str = "mean"
    sigma_scale: float = 0.125
    tile_batch: int = 0
    mirror_axes: tuple[int, ...] = ()
    amp_dtype: str = "float16"
    accumulate_on_device: bool = True
    skip_outside_mask: bool = True
    pad_value: float = 0.0
    fill_value: float = 0.0
    progress: bool = True

    def __post_init__(self) -> None:
        if len(self.tile_size) != 3 or min(self.tile_size) <= 0:
            raise ValueError(f"tile_size must be 3 positive ints (Z, Y, X), got {self.tile_size}")
        if not 0 < self.step <= 1:
            raise ValueError(f"step must be in (0, 1], got {self.step}")
        if self.blend not in BLEND_MODES:
            raise ValueError(f"blend must be one of {BLEND_MODES}, got {self.blend!r}")
        if self.amp_dtype not in AMP_DTYPES:
            raise ValueError(f"amp_dtype must be one of {sorted(AMP_DTYPES)}, got {self.amp_dtype!r}")
        if self.tile_batch < 0:
            raise ValueError(f"tile_batch must be >= 0 (0 = automatic), got {self.tile_batch}")
        if any(a not in (0, 1, 2) for a in self.mirror_axes):
            raise ValueError(f"mirror_axes must be spatial axes 0..2, got {self.mirror_axes}")


def select_tiles(tiles: Sequence[TileSlices], mask: np.ndarray | None) -> list[TileSlices]:
    """The tiles that touch ``mask`` (all tiles when ``mask`` is None).

    "Touches" is an OR over the tile's box, which separates by axis: OR over each distinct X window, then over each
    Y window, then over each Z window. That reads the mask once per X window (a few passes) instead of once per tile.
    """
    if mask is None:
        return list(tiles)
    windows = [sorted({(t[a].start, t[a].stop) for t in tiles}) for a in range(3)]
    index = [{w: i for i, w in enumerate(ws)} for ws in windows]
    hit = np.stack([mask[:, :, x0:x1].any(axis=2) for x0, x1 in windows[2]], axis=-1)  # (Z, Y, nX)
    hit = np.stack([hit[:, y0:y1].any(axis=1) for y0, y1 in windows[1]], axis=1)  # (Z, nY, nX)
    hit = np.stack([hit[z0:z1].any(axis=0) for z0, z1 in windows[0]], axis=0)  # (nZ, nY, nX)
    return [t for t in tiles if hit[tuple(index[a][(t[a].start, t[a].stop)] for a in range(3))]]


def _batches(tiles: Sequence[TileSlices], size: int) -> Iterator[Sequence[TileSlices]]:
    for i in range(0, len(tiles), size):
        yield tiles[i : i + size]


def _gather(image: torch.Tensor, batch: Sequence[TileSlices], device: torch.device) -> torch.Tensor:
    """Stack the tiles of ``batch`` from ``image`` (C, Z, Y, X) into (B, C, *tile) on ``device``."""
    x = torch.stack([image[(slice(None), *t)] for t in batch])
    if x.device != device:
        if device.type == "cuda" and x.device.type == "cpu":
            x = x.pin_memory()
        x = x.to(device, non_blocking=True)
    return x


def _stitch(
    run: TileRunner,
    image: torch.Tensor,
    batches: Sequence[Sequence[TileSlices]],
    settings: SlidingWindowSettings,
    device: torch.device,
    accumulate_on: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over the tile ``batches``: returns (sum (C_out, Z, Y, X), weight (Z, Y, X)), float32 on
    ``accumulate_on``. ``run(index, x)`` gives each batch's output; this function only gathers and stitches.

    The next tile batch is gathered (and, from the CPU, copied asynchronously from pinned memory) while the current
    one is still computing on the GPU.
    """
    if accumulate_on.type == "cuda" and image.device.type == "cpu":
        image = image.pin_memory()
    image = image.to(accumulate_on, non_blocking=accumulate_on.type == "cuda")
    w = weight_map(tuple(settings.tile_size), settings.blend, settings.sigma_scale, accumulate_on)
    weight = torch.zeros(image.shape[1:], dtype=torch.float32, device=accumulate_on)
    total: torch.Tensor | None = None
    n_tiles = sum(len(b) for b in batches)
    bar = TileProgress(n_tiles, settings.progress)  # a bar on terminals, periodic INFO lines in logs
    with bar:
        upcoming = _gather(image, batches[0], device)
        for i, batch in enumerate(batches):
            pred = run(i, upcoming)  # asynchronous on CUDA
            if i + 1 < len(batches):
                upcoming = _gather(image, batches[i + 1], device)
            pred = pred.to(accumulate_on)  # blocking: a non-blocking device→host copy could be read too early
            if total is None:
                total = torch.zeros((pred.shape[1], *image.shape[1:]), dtype=torch.float32, device=accumulate_on)
            for b, tile in enumerate(batch):
                if w is None:
                    total[(slice(None), *tile)] += pred[b]
                    weight[tile] += 1.0
                else:
                    total[(slice(None), *tile)] += pred[b] * w
                    weight[tile] += w
            bar.update(len(batch))
    LOG.debug("stitched %d tiles in %d batches of <= %d", n_tiles, len(batches), max(len(b) for b in batches))
    assert total is not None
    return total, weight


#: Seconds between the progress lines of :class:`TileProgress` when stderr is not a terminal (logs, CI).
PROGRESS_LOG_INTERVAL_S = 15.0


class TileProgress:
    """Tile progress: a tqdm bar on a terminal; on a log (stderr not a terminal) an INFO line at most every
    :data:`PROGRESS_LOG_INTERVAL_S` seconds and one at the end, instead of carriage-return spam.

    Args:
        total: number of tiles to run.
        enabled: False shows nothing (e.g. a batch run with its own bar over the cases).
    """

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.done = 0
        on_terminal = bool(getattr(sys.stderr, "isatty", lambda: False)())
        self.bar = tqdm(total=total, desc="sliding window", unit="tile", disable=not (enabled and on_terminal),
                        leave=False)
        self.log_lines = enabled and not on_terminal
        self.start = self.last = time.monotonic()

    def __enter__(self) -> TileProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
        if self.log_lines and exc[0] is None and self.total:
            self._log()

    def update(self, n: int) -> None:
        """``n`` more tiles are done."""
        self.done += n
        self.bar.update(n)
        now = time.monotonic()
        if self.log_lines and self.done < self.total and now - self.last >= PROGRESS_LOG_INTERVAL_S:
            self.last = now
            self._log()

    def _log(self) -> None:
        LOG.info("sliding window: %d/%d tiles (%.0f %%), %.1f s", self.done, self.total,
                 100.0 * self.done / self.total, time.monotonic() - self.start)


def auto_tile_batch(networks: Sequence[Network], in_channels: int, settings: SlidingWindowSettings,
                    device: torch.device, max_batch: int = 8) -> int:
    """Tiles per forward pass: 2 on the CPU; on CUDA, from the peak memory of one batch-1 forward and free memory."""
    if settings.tile_batch > 0:
        return settings.tile_batch
    if device.type != "cuda":
        return 2
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    x = torch.zeros((1, in_channels, *settings.tile_size), device=device)
    ensemble_forward(networks[:1], x, (), AMP_DTYPES[settings.amp_dtype])
    per_tile = max(torch.cuda.max_memory_allocated(device) - base, 1)
    free, _ = torch.cuda.mem_get_info(device)
    batch = int(max(1, min(max_batch, (0.5 * free) // per_tile)))
    LOG.info("tile batch %d (%.2f GiB per tile, %.1f GiB free)", batch, per_tile / 2**30, free / 2**30)
    return batch


def _attempts(batch: int, device: torch.device, on_device: bool) -> list[tuple[int, torch.device]]:
    """(tile batch, accumulation device) to try in order: halve the batch, then move accumulators to the CPU."""
    cpu = torch.device("cpu")
    first = device if on_device else cpu
    sizes = []
    while batch >= 1:
        sizes.append(batch)
        batch //= 2
    plan = [(b, first) for b in sizes]
    if first.type == "cuda":
        plan.append((1, cpu))
    return plan


def sliding_window_predict(
    networks: Sequence[Network],
    image: torch.Tensor,
    settings: SlidingWindowSettings,
    device: torch.device | str = "cpu",
    mask: np.ndarray | torch.Tensor | None = None,
    engine: BatchEngine | None = None,
    budget: TimeBudget | None = None,
) -> torch.Tensor:
    """Predict a whole volume tile by tile and blend the tiles.

    Args:
        networks: one or more models (folds) in eval mode on ``device``; (B, C_in, *tile) → (B, C_out, *tile).
        image: (C_in, Z, Y, X) float32, normalised network input (CPU or ``device``).
        settings: tiling, blending, batching and precision settings.
        device: compute device.
        mask: optional (Z, Y, X) boolean body mask for tile skipping.
        engine: optional tile engine of the same ``networks`` (``synthct.inference.accel``); None = eager.
        budget: optional per-case time budget; may drop TTA and folds after the first tile batch.

    Returns:
        (C_out, Z, Y, X) float32 tensor on the CPU.

    Raises:
        ValueError: bad shapes or an empty network list.
    """
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:  # "cuda" → "cuda:N", so device comparisons hold
        device = torch.device("cuda", torch.cuda.current_device())
    if not networks:
        raise ValueError("at least one network is required")
    if image.ndim != 4:
        raise ValueError(f"image must be (C, Z, Y, X), got shape {tuple(image.shape)}")
    image = image.float()
    spatial = tuple(image.shape[1:])
    mask_np = None if mask is None else np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask, bool)
    if mask_np is not None and mask_np.shape != spatial:
        raise ValueError(f"mask shape {mask_np.shape} differs from image shape {spatial}")
    pads = centred_padding(spatial, settings.tile_size)
    if any(p for pair in pads for p in pair):
        flat = [p for pair in reversed(pads) for p in pair]  # F.pad wants last axis first
        image = F.pad(image[None], flat, value=settings.pad_value)[0]
        if mask_np is not None:
            mask_np = np.pad(mask_np, pads, constant_values=False)
    tiles = plan_tiles(tuple(image.shape[1:]), settings.tile_size, settings.step)
    if settings.skip_outside_mask and mask_np is not None:
        computed = select_tiles(tiles, mask_np)
    else:
        computed = tiles
    LOG.info("sliding window: %d of %d tiles (tile %s, step %.2f, %s blending, %d network(s), %d flip(s))",
             len(computed), len(tiles), settings.tile_size, settings.step, settings.blend, len(networks),
             len(flip_sets(settings.mirror_axes)))
    crop = tuple(slice(b, b + s) for (b, _), s in zip(pads, spatial, strict=True))
    if not computed:
        return torch.full((1, *spatial), settings.fill_value, dtype=torch.float32)
    with torch.inference_mode():
        total, weight = _run_with_fallback(networks, image, computed, settings, device, engine, budget)
        covered = weight > 0
        out = torch.where(covered, total / torch.where(covered, weight, 1.0), settings.fill_value)
        return out[(slice(None), *crop)].cpu()


def _run_with_fallback(
    networks: Sequence[Network],
    image: torch.Tensor,
    tiles: Sequence[TileSlices],
    settings: SlidingWindowSettings,
    device: torch.device,
    engine: BatchEngine | None = None,
    budget: TimeBudget | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    batch = auto_tile_batch(networks, image.shape[0], settings, device)
    plan = _attempts(batch, device, settings.accumulate_on_device)
    for i, (size, accumulate_on) in enumerate(plan):
        batches = list(_batches(tiles, size))
        try:
            engine_run = None if engine is None else engine.runner(size, len(batches[-1]))
            run = EnsembleRunner(networks, settings.mirror_axes, AMP_DTYPES[settings.amp_dtype], len(batches),
                                 engine_run, budget)
            return _stitch(run, image, batches, settings, device, accumulate_on)
        except torch.OutOfMemoryError:
            if i == len(plan) - 1:
                raise
            nxt = plan[i + 1]
            LOG.warning("out of memory with tile batch %d, accumulators on %s; retrying with batch %d on %s",
                        size, accumulate_on, nxt[0], nxt[1])
            if device.type == "cuda":
                torch.cuda.empty_cache()
    raise AssertionError("unreachable")
