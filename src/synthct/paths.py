"""The one place that reads (and, for nnU-Net, writes) environment variables.

nnU-Net 2.8.1 finds its folders through ``nnUNet_raw``, ``nnUNet_preprocessed`` and ``nnUNet_results`` and reads them
lazily (at call time), so a command can choose them at run time. Precedence: an explicit argument (CLI option) wins
over the environment. :func:`use_nnunet_paths` resolves the three folders and exports them for nnU-Net.

Also here: the ``torchrun`` variables (RANK, LOCAL_RANK, WORLD_SIZE) that decide whether training runs under DDP, and
the nnU-Net data-augmentation worker count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from synthct.typing import PathLike

RAW = "nnUNet_raw"
PREPROCESSED = "nnUNet_preprocessed"
RESULTS = "nnUNet_results"


@dataclass(frozen=True)
class NnUNetPaths:
    """The three nnU-Net folders; ``None`` where neither an argument nor the environment gives one."""

    raw: Path | None
    preprocessed: Path | None
    results: Path | None

    def require(self, *names: str) -> None:
        """Raise RuntimeError naming the option and the variable for each requested folder that is unset."""
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            hints = ", ".join(f"--{n} or ${_ENV[n]}" for n in missing)
            raise RuntimeError(f"nnU-Net folder(s) not set: {hints}")


_ENV = {"raw": RAW, "preprocessed": PREPROCESSED, "results": RESULTS}


def _pick(explicit: PathLike | None, env_name: str) -> Path | None:
    if explicit is not None:
        return Path(explicit).expanduser().resolve()
    value = os.environ.get(env_name)
    return Path(value).expanduser().resolve() if value else None


def resolve_nnunet_paths(raw: PathLike | None = None, preprocessed: PathLike | None = None,
                         results: PathLike | None = None) -> NnUNetPaths:
    """The nnU-Net folders: explicit arguments first, then the environment variables."""
    return NnUNetPaths(_pick(raw, RAW), _pick(preprocessed, PREPROCESSED), _pick(results, RESULTS))


def use_nnunet_paths(raw: PathLike | None = None, preprocessed: PathLike | None = None,
                     results: PathLike | None = None) -> NnUNetPaths:
    """Resolve the folders (explicit > environment) and export the set ones so nnunetv2 sees them; returns them."""
    paths = resolve_nnunet_paths(raw, preprocessed, results)
    for name, env_name in _ENV.items():
        value = getattr(paths, name)
        if value is not None:
            os.environ[env_name] = str(value)
    return paths


@dataclass(frozen=True)
class DistributedEnv:
    """Process placement set by ``torchrun``: global rank, rank on this node, number of processes."""

    rank: int
    local_rank: int
    world_size: int


def distributed_env() -> DistributedEnv | None:
    """The torchrun placement if this process was started by torchrun (WORLD_SIZE set), else None."""
    world = os.environ.get("WORLD_SIZE")
    if world is None:
        return None
    try:
        return DistributedEnv(int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), int(world))
    except ValueError:
        raise ValueError(f"malformed torchrun variables RANK={os.environ.get('RANK')!r} "
                         f"LOCAL_RANK={os.environ.get('LOCAL_RANK')!r} WORLD_SIZE={world!r}") from None


def data_augmentation_workers() -> int | None:
    """``nnUNet_n_proc_DA`` as an int, or None when unset (nnU-Net then picks a default)."""
    value = os.environ.get("nnUNet_n_proc_DA")
    return None if value is None else int(value)


def add_path_arguments(parser: object, *names: str) -> None:
    """Add ``--raw`` / ``--preprocessed`` / ``--results`` options (explicit folders that win over the environment)
    to an argparse parser."""
    helps = {"raw": f"nnU-Net raw folder (default ${RAW})",
             "preprocessed": f"nnU-Net preprocessed folder (default ${PREPROCESSED})",
             "results": f"nnU-Net results folder (default ${RESULTS})"}
    for name in names:
        parser.add_argument(f"--{name}", default=None, metavar="DIR", help=helps[name])  # type: ignore[attr-defined]
