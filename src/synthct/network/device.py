"""The one device resolution of inference and training: "auto" | "cpu" | "cuda" | "cuda:N" → a torch device."""

from __future__ import annotations

import torch


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """The torch device of ``name``.

    Args:
        name: "auto" (CUDA when available, else the CPU), "cpu", "cuda" or "cuda:N".
        local_rank: under torchrun, the rank on this node: an index-less CUDA device becomes ``cuda:<local_rank>``
            (None: it stays index-less, i.e. the current CUDA device).

    Raises:
        ValueError: CUDA requested but not available (the message quotes ``name``).
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available")
        if device.index is None and local_rank is not None:
            device = torch.device("cuda", local_rank)
    return device
