"""Opt-in tile-engine switches for the sliding window (none is on by default; none is measured on a GPU yet).

Each switch computes the same function as the eager engine (:func:`~synthct.inference.ensemble.ensemble_forward`):

* ``warmup``: one forward per tile-batch shape before the first real batch, so cuDNN's autotuning
  (``cudnn.benchmark``) and the allocator's growth happen outside the timed stitching loop.
* ``channels_last``: networks and tile batches in the channels-last 3-D memory format (NDHWC).
* ``compile_mode``: ``torch.compile`` of every network (``dynamic=False``) in that mode; Inductor's caches go to
  ``compile_cache_dir`` (under /tmp by default) unless ``TORCHINDUCTOR_CACHE_DIR`` is already set.
* ``cuda_graphs``: the whole ensemble forward (all folds, all mirror flips, the fold mean) of a fixed-shape tile batch
  is captured once as a CUDA graph and replayed; tiles are copied into its static input buffer. CUDA only.
* ``resident_dtype``: convolution weights and biases are cast once to fp16/bf16 and stay on the device (half the
  memory of an fp32 ensemble). Under autocast the convolutions cast their fp32 weights to the autocast dtype on every
  call anyway, so pre-casting gives the same numbers; norm parameters and other non-convolution parameters stay fp32
  (autocast leaves them fp32 too). CUDA only and only with the same autocast dtype (the CPU always computes in float32).

Fixed-shape modes (``compile_mode``, ``cuda_graphs``) pad a short last batch to the full batch with zeros and drop
the padded outputs: the network treats each tile independently (InstanceNorm per sample), so this changes nothing.

Timings of the preparation (warm-up, compilation, capture) are kept in :attr:`TileEngine.stats` so that a benchmark
can report them apart from the tile work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from synthct.inference import ensemble
from synthct.paths import use_inductor_cache

LOG = logging.getLogger(__name__)

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: Compile modes that capture CUDA graphs themselves (cannot be combined with ``cuda_graphs``).
GRAPHING_COMPILE_MODES = ("reduce-overhead", "max-autotune")
RESIDENT_DTYPES = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}
DEFAULT_COMPILE_CACHE = "/tmp/synthct-torch-compile"
_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)

BatchFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class AccelOptions:
    """Tile-engine switches (all off = the eager engine). See the module docstring for what each does.

    Attributes:
        warmup: one forward per tile-batch shape before the stitching loop.
        channels_last: channels-last 3-D memory format for networks and tiles.
        compile_mode: None (eager) or a ``torch.compile`` mode from :data:`COMPILE_MODES`.
        compile_cache_dir: Inductor cache folder (used only if ``TORCHINDUCTOR_CACHE_DIR`` is unset).
        cuda_graphs: capture the fixed-shape ensemble forward as a CUDA graph (CUDA only).
        resident_dtype: "float32" (no cast), "float16" or "bfloat16" convolution weights (CUDA only, must equal the
            autocast dtype).
        resample_on_device: resample input and output on the compute device instead of the CPU (predictor).
    """

    warmup: bool = False
    channels_last: bool = False
    compile_mode: str | None = None
    compile_cache_dir: str = DEFAULT_COMPILE_CACHE
    cuda_graphs: bool = False
    resident_dtype: str = "float32"
    resample_on_device: bool = False

    def __post_init__(self) -> None:
        if self.compile_mode is not None and self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode must be None or one of {COMPILE_MODES}, got {self.compile_mode!r}")
        if self.resident_dtype not in RESIDENT_DTYPES:
            raise ValueError(f"resident_dtype must be one of {sorted(RESIDENT_DTYPES)}, got {self.resident_dtype!r}")
        if self.cuda_graphs and self.compile_mode in GRAPHING_COMPILE_MODES:
            raise ValueError(f"cuda_graphs cannot be combined with compile_mode {self.compile_mode!r}, which captures "
                             f"CUDA graphs itself; use 'default' or 'max-autotune-no-cudagraphs'")

    @property
    def engine_needed(self) -> bool:
        """Whether any switch changes the tile engine (``resample_on_device`` does not)."""
        return (self.warmup or self.channels_last or self.compile_mode is not None or self.cuda_graphs
                or self.resident_dtype != "float32")

    def check(self, device: torch.device, amp_dtype: str) -> None:
        """Refuse combinations the device cannot run, with the reason.

        Raises:
            ValueError: CUDA graphs or resident fp16/bf16 weights on a non-CUDA device, or resident weights whose
                dtype differs from the autocast dtype.
        """
        if self.cuda_graphs and device.type != "cuda":
            raise ValueError(f"cuda_graphs needs a CUDA device, got {str(device)!r}")
        if self.resident_dtype != "float32":
            if device.type != "cuda":
                raise ValueError(f"resident_dtype {self.resident_dtype!r} needs a CUDA device (the CPU always "
                                 f"computes in float32), got {str(device)!r}")
            if amp_dtype != self.resident_dtype:
                raise ValueError(f"resident_dtype {self.resident_dtype!r} must equal the autocast dtype, got amp "
                                 f"{amp_dtype!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> AccelOptions:
        """From a models.json ``"accel"`` object; unknown keys are refused."""
        data = data or {}
        if not isinstance(data, dict):
            raise ValueError(f"accel must be a JSON object, got {data!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown accel keys {unknown}; known: {sorted(known)}")
        return cls(**data)


def cast_resident(network: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Cast the weights and biases of every convolution of ``network`` to ``dtype`` in place; returns it.

    Norm parameters, other parameters (e.g. an input-skip scale) and buffers keep their dtype.
    """
    for module in network.modules():
        if isinstance(module, _CONV_TYPES):
            for name in ("weight", "bias"):
                param = getattr(module, name, None)
                if param is not None:
                    param.data = param.data.to(dtype)
    return network


def prepare_networks(networks: Sequence[nn.Module], options: AccelOptions) -> list[nn.Module]:
    """Apply the in-place switches (resident dtype, channels-last) to eval-mode networks already on the device."""
    out = []
    for net in networks:
        dtype = RESIDENT_DTYPES[options.resident_dtype]
        if dtype is not None:
            cast_resident(net, dtype)
        if options.channels_last:
            net = net.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]  # torch's stubs lack it
        out.append(net)
    return out


def ensemble_forward(networks: Sequence[Callable[[torch.Tensor], torch.Tensor]], x: torch.Tensor,
                     mirror_axes: Sequence[int], amp_dtype: torch.dtype | None, channels_last: bool = False,
                     autocast_cache: bool = True) -> torch.Tensor:
    """:func:`~synthct.inference.ensemble.ensemble_forward` (mean over networks and flips), contiguous.

    ``channels_last`` feeds NDHWC tiles; ``autocast_cache=False`` is required inside CUDA-graph capture.

    Returns:
        (B, C_out, Z, Y, X) float32, contiguous, on ``x.device``.
    """
    return ensemble.ensemble_forward(networks, x, mirror_axes, amp_dtype, channels_last, autocast_cache).contiguous()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TileEngine:
    """Builds the per-batch forward of the sliding window with the switches of ``options``.

    Args:
        networks: eval-mode networks on ``device``, already passed through :func:`prepare_networks`.
        options: the switches.
        device: compute device.
        tile_size: (Z, Y, X) tile size.
        in_channels: network input channels.
        mirror_axes: spatial mirror axes for TTA.
        amp_dtype: "float16", "bfloat16" or "float32" (autocast on CUDA only).

    Raises:
        ValueError: see :meth:`AccelOptions.check`.
    """

    def __init__(self, networks: Sequence[nn.Module], options: AccelOptions, device: torch.device | str,
                 tile_size: Sequence[int], in_channels: int, mirror_axes: Sequence[int] = (),
                 amp_dtype: str = "float16") -> None:
        self.device = torch.device(device)
        options.check(self.device, amp_dtype)
        self.options = options
        self.tile_size = tuple(int(t) for t in tile_size)
        self.in_channels = int(in_channels)
        self.mirror_axes = tuple(mirror_axes)
        self.amp = ensemble.AMP_DTYPES[amp_dtype]
        self.stats: dict[str, float] = {"compile_wrap_s": 0.0, "warmup_s": 0.0, "capture_s": 0.0, "prepared": 0}
        self.networks: list[Callable[[torch.Tensor], torch.Tensor]] = list(networks)
        if options.compile_mode is not None:
            self.networks = [self._compile(net) for net in networks]
        self._cached: tuple[tuple[int, int], BatchFn] | None = None

    def _compile(self, net: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        use_inductor_cache(self.options.compile_cache_dir)
        t0 = time.perf_counter()
        compiled = torch.compile(net, mode=self.options.compile_mode, dynamic=False)
        self.stats["compile_wrap_s"] += time.perf_counter() - t0
        return compiled

    @property
    def fixed_shape(self) -> bool:
        return self.options.compile_mode is not None or self.options.cuda_graphs

    def _forward(self, x: torch.Tensor, autocast_cache: bool = True) -> torch.Tensor:
        return ensemble_forward(self.networks, x, self.mirror_axes, self.amp, self.options.channels_last,
                                autocast_cache)

    def _example(self, batch: int) -> torch.Tensor:
        gen = torch.Generator(device="cpu").manual_seed(batch)
        x = torch.randn((batch, self.in_channels, *self.tile_size), generator=gen)
        return x.to(self.device)

    def runner(self, batch_size: int, last_batch: int | None = None) -> BatchFn:
        """The forward for tile batches of ``batch_size`` (the last may hold ``last_batch`` tiles): x → (B, C, *tile)
        float32. Prepared once (warm-up, compilation, capture) and cached for the same sizes; a new size replaces
        the cached one (releasing its graph)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        last = batch_size if not last_batch or self.fixed_shape else int(last_batch)
        key = (int(batch_size), last)
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        self._cached = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        with torch.inference_mode():
            fn = self._build(batch_size, last)
        self._cached = (key, fn)
        self.stats["prepared"] += 1
        return fn

    def _build(self, batch_size: int, last: int) -> BatchFn:
        needs_run = self.options.warmup or self.options.compile_mode is not None or self.options.cuda_graphs
        if needs_run:
            t0 = time.perf_counter()
            for b in sorted({batch_size, last}):
                self._forward(self._example(b), autocast_cache=not self.options.cuda_graphs)
            _sync(self.device)
            self.stats["warmup_s"] += time.perf_counter() - t0
            LOG.info("tile engine warm-up (batch %s%s) in %.2f s", sorted({batch_size, last}),
                     f", compile {self.options.compile_mode}" if self.options.compile_mode else "",
                     time.perf_counter() - t0)
        if self.options.cuda_graphs:
            return self._capture(batch_size)
        if self.fixed_shape:
            return self._padded(self._forward, batch_size)
        return self._forward

    @staticmethod
    def _padded(fn: BatchFn, batch_size: int) -> BatchFn:
        def run(x: torch.Tensor) -> torch.Tensor:
            n = x.shape[0]
            if n == batch_size:
                return fn(x)
            if n > batch_size:
                raise ValueError(f"tile batch of {n} exceeds the prepared batch size {batch_size}")
            pad = torch.zeros((batch_size - n, *x.shape[1:]), dtype=x.dtype, device=x.device)
            return fn(torch.cat([x, pad]))[:n]
        return run

    def _capture(self, batch_size: int) -> BatchFn:
        """Capture the ensemble forward of a (batch_size, C, *tile) static buffer as one CUDA graph."""
        t0 = time.perf_counter()
        static_x = self._example(batch_size)
        if self.options.channels_last:
            static_x = static_x.contiguous(memory_format=torch.channels_last_3d)
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):  # warm-up on a side stream, as capture requires
            for _ in range(2):
                self._forward(static_x, autocast_cache=False)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_y = self._forward(static_x, autocast_cache=False)
        _sync(self.device)
        self.stats["capture_s"] += time.perf_counter() - t0
        LOG.info("captured the tile-batch forward (batch %d) as a CUDA graph in %.2f s", batch_size,
                 time.perf_counter() - t0)
        return _GraphReplay(graph, static_x, static_y)


class _GraphReplay:
    """The forward of a captured CUDA graph: copy the tiles into its static input, replay, copy the outputs out.

    Holds the graph (and so its memory pool) for as long as the runner lives.
    """

    def __init__(self, graph: torch.cuda.CUDAGraph, static_x: torch.Tensor, static_y: torch.Tensor) -> None:
        self.graph = graph
        self.static_x, self.static_y = static_x, static_y
        self.batch_size = static_x.shape[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if n > self.batch_size:
            raise ValueError(f"tile batch of {n} exceeds the captured batch size {self.batch_size}")
        self.static_x[:n].copy_(x)
        if n < self.batch_size:
            self.static_x[n:].zero_()
        self.graph.replay()
        return self.static_y[:n].clone()
