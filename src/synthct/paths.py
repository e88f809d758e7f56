"""The one place that reads (and, for nnU-Net, torch and child processes, writes) environment variables.

nnU-Net 2.8.1 finds its folders through ``nnUNet_raw``, ``nnUNet_preprocessed`` and ``nnUNet_results`` and reads them
lazily (at call time), so a command can choose them at run time. Precedence: an explicit argument (CLI option) wins
over the environment. :func:`use_nnunet_paths` resolves the three folders and exports them for nnU-Net.

Also here: the ``torchrun`` variables (RANK, LOCAL_RANK, WORLD_SIZE) that decide whether training runs under DDP, the
nnU-Net data-augmentation worker count, and :class:`Settings`, every other variable synthct reads (time budget, CPU
threads, task of the image, platform model folder, training-config overrides, visible NVIDIA devices), read at call
time by :func:`settings`. ``tests/test_environment.py`` fails when another module touches ``os.environ``; the one
exception is :mod:`synthct.openmp`, which must set ``OMP_WAIT_POLICY`` before torch loads.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator, Mapping
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


DA_WORKERS = "nnUNet_n_proc_DA"


def data_augmentation_workers() -> int | None:
    """``nnUNet_n_proc_DA`` as an int, or None when unset (nnU-Net then picks a default).

    Raises:
        ValueError: the variable is not an integer (the message quotes it).
    """
    value = os.environ.get(DA_WORKERS)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{DA_WORKERS} must be an integer, got {value!r}") from None


@contextlib.contextmanager
def at_least_one_augmentation_worker() -> Iterator[None]:
    """While the block runs, ``nnUNet_n_proc_DA=0`` reads as 1 (restored afterwards).

    nnU-Net's planner VRAM estimate calls ``torch.set_num_threads(get_allowed_n_proc_DA())``, which fails for 0.
    """
    previous = os.environ.get(DA_WORKERS)
    if previous is None or previous.strip() != "0":
        yield
        return
    os.environ[DA_WORKERS] = "1"
    try:
        yield
    finally:
        os.environ[DA_WORKERS] = previous


INDUCTOR_CACHE = "TORCHINDUCTOR_CACHE_DIR"


def use_inductor_cache(default_dir: str) -> str:
    """The torch.compile (Inductor) cache folder: ``$TORCHINDUCTOR_CACHE_DIR`` if set, else ``default_dir``, which is
    then created and exported for Inductor. Returns the folder in use."""
    current = os.environ.get(INDUCTOR_CACHE)
    if current:
        return current
    os.makedirs(default_dir, exist_ok=True)
    os.environ[INDUCTOR_CACHE] = default_dir
    return default_dir


def child_environment(**extra: str) -> dict[str, str]:
    """The environment for a child process: this process's, with ``extra`` set (e.g. a tool's weights folder)."""
    return {**os.environ, **extra}


#: Variables of :class:`Settings`, by field.
SETTINGS_ENV: dict[str, str] = {
    "time_budget": "SYNTHCT_TIME_BUDGET",
    "cpu_threads": "SYNTHCT_CPU_THREADS",
    "task": "SYNTHCT_TASK",
    "platform_model_dir": "SYNTHCT_PLATFORM_MODEL_DIR",
    "train_config": "SYNTHCT_TRAIN_CONFIG",
    "nvidia_visible_devices": "NVIDIA_VISIBLE_DEVICES",
}


@dataclass(frozen=True)
class Settings:
    """The environment variables synthct reads, as found (raw strings, None when unset); each reader validates its
    own (and quotes the variable in its error).

    Attributes:
        time_budget: ``SYNTHCT_TIME_BUDGET``, the image's default per-case budget in seconds (Dockerfile).
        cpu_threads: ``SYNTHCT_CPU_THREADS``, torch intra-op threads on the CPU.
        task: ``SYNTHCT_TASK``, the task the image serves (``--build-arg TASK``), for ``--check-models``.
        platform_model_dir: ``SYNTHCT_PLATFORM_MODEL_DIR``, where the platform extracts the model tarball.
        train_config: ``SYNTHCT_TRAIN_CONFIG``, TrainConfig overrides (JSON object or file) for stock nnU-Net CLIs.
        nvidia_visible_devices: ``NVIDIA_VISIBLE_DEVICES``, GPUs the container runtime gave this container.
    """

    time_budget: str | None = None
    cpu_threads: str | None = None
    task: str | None = None
    platform_model_dir: str | None = None
    train_config: str | None = None
    nvidia_visible_devices: str | None = None


def settings(env: Mapping[str, str] | None = None) -> Settings:
    """:class:`Settings` read now from ``env`` (default: this process's environment)."""
    source: Mapping[str, str] = os.environ if env is None else env
    return Settings(**{field: source.get(name) for field, name in SETTINGS_ENV.items()})


def add_path_arguments(parser: argparse.ArgumentParser, *names: str) -> None:
    """Add ``--raw`` / ``--preprocessed`` / ``--results`` options (explicit folders that win over the environment)
    to an argparse parser."""
    helps = {"raw": f"nnU-Net raw folder (default ${RAW})",
             "preprocessed": f"nnU-Net preprocessed folder (default ${PREPROCESSED})",
             "results": f"nnU-Net results folder (default ${RESULTS})"}
    for name in names:
        parser.add_argument(f"--{name}", default=None, metavar="DIR", help=helps[name])
