"""The fold × mirror-flip ensemble of one tile batch: which members (an immutable :class:`Ensemble`), one member's
forward, and the one averaging function every path uses (eager, tile engine, time budget).

A member is (fold, flip): the fold's network applied to the tile batch flipped along ``flip`` (tensor dims of a
(B, C, Z, Y, X) batch; ``()`` is the plain forward), its output flipped back. The ensemble's prediction is the mean over
members in :attr:`Ensemble.members` order (folds outer, flips inner), summed in float32.

No other synthct imports here (``tests/test_layers.py``).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

Network = Callable[[torch.Tensor], torch.Tensor]
#: Autocast dtype per ``amp_dtype`` setting; None = float32 (no autocast).
AMP_DTYPES: dict[str, torch.dtype | None] = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": None}


def flip_sets(mirror_axes: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """All subsets of the spatial mirror axes (0 = Z, 1 = Y, 2 = X), the empty one first, as tensor dims of a
    (B, C, Z, Y, X) batch: ``(1, 2)`` → ``((), (3,), (4,), (3, 4))``."""
    dims = [a + 2 for a in mirror_axes]
    return tuple(c for r in range(len(dims) + 1) for c in itertools.combinations(dims, r))


@dataclass(frozen=True)
class Ensemble:
    """Which members a tile batch's prediction averages.

    Attributes:
        folds: indices into the network list, in order.
        mirror_axes: spatial mirror axes of the TTA flips (() = the plain forward only).
    """

    folds: tuple[int, ...]
    mirror_axes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.folds:
            raise ValueError("an ensemble needs at least one fold, got none")
        if any(a not in (0, 1, 2) for a in self.mirror_axes):
            raise ValueError(f"mirror_axes must be spatial axes 0..2, got {self.mirror_axes}")

    @classmethod
    def full(cls, n_networks: int, mirror_axes: Sequence[int] = ()) -> Ensemble:
        """Every network, every flip of ``mirror_axes``."""
        return cls(tuple(range(n_networks)), tuple(mirror_axes))

    @property
    def flips(self) -> tuple[tuple[int, ...], ...]:
        return flip_sets(self.mirror_axes)

    @property
    def members(self) -> tuple[tuple[int, tuple[int, ...]], ...]:
        """(fold, flip dims) pairs, folds outer, flips inner: the order of the sum."""
        return tuple((f, dims) for f in self.folds for dims in self.flips)


def member_forward(net: Network, x: torch.Tensor, dims: tuple[int, ...], amp_dtype: torch.dtype | None,
                   channels_last: bool = False, autocast_cache: bool = True) -> torch.Tensor:
    """One member: ``flip(net(flip(x, dims)), dims)`` as float32.

    Args:
        net: (B, C_in, Z, Y, X) → (B, C_out, Z, Y, X).
        x: tile batch on the compute device.
        dims: tensor dims to flip (() = none).
        amp_dtype: autocast dtype, used on CUDA only; None = float32.
        channels_last: feed the network NDHWC tiles (opt-in switch of :mod:`synthct.inference.accel`).
        autocast_cache: autocast's weight-cast cache; False inside CUDA-graph capture.
    """
    xi = torch.flip(x, dims) if dims else x
    if channels_last:
        xi = xi.contiguous(memory_format=torch.channels_last_3d)
    use_amp = x.device.type == "cuda" and amp_dtype is not None
    ctx = (torch.autocast("cuda", dtype=amp_dtype, cache_enabled=autocast_cache) if use_amp
           else contextlib.nullcontext())
    with ctx:
        y = net(xi)
    y = y.float()
    return torch.flip(y, dims) if dims else y


def average(outputs: Iterable[torch.Tensor]) -> torch.Tensor:
    """The mean of member outputs, summed in iteration order into the first one (in place: pass fresh tensors).

    Streaming: a generator keeps one member output alive at a time.

    Raises:
        ValueError: no outputs.
    """
    total: torch.Tensor | None = None
    n = 0
    for y in outputs:
        total = y if total is None else total.add_(y)
        n += 1
    if total is None:
        raise ValueError("average of no member outputs")
    return total.div_(n) if n > 1 else total


def ensemble_forward(networks: Sequence[Network], x: torch.Tensor, mirror_axes: Sequence[int],
                     amp_dtype: torch.dtype | None, channels_last: bool = False,
                     autocast_cache: bool = True) -> torch.Tensor:
    """Mean over every network and every mirror flip for one tile batch (:meth:`Ensemble.full` of ``networks``).

    Args:
        networks: models mapping (B, C_in, Z, Y, X) → (B, C_out, Z, Y, X).
        x: tile batch on the compute device.
        mirror_axes: spatial mirror axes for TTA.
        amp_dtype: autocast dtype on CUDA, None for float32.
        channels_last: see :func:`member_forward`.
        autocast_cache: see :func:`member_forward`.

    Returns:
        (B, C_out, Z, Y, X) float32 on ``x.device``.
    """
    ensemble = Ensemble.full(len(networks), mirror_axes)
    return average(member_forward(networks[f], x, dims, amp_dtype, channels_last, autocast_cache)
                   for f, dims in ensemble.members)
