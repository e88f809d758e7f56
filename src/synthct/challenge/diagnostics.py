"""Start-up diagnostics: one line naming torch, its CUDA build, cuDNN, the device and the driver; and a hard stop
when NVIDIA devices are visible but CUDA is unusable.

Why the hard stop: PyPI's torch 2.13 is a CUDA 13 build (driver >= 580). On a host whose driver is older than the
image's CUDA build, ``torch.cuda.is_available()`` is silently False, ``--device auto`` would pick the CPU, and a
5-fold model would run for hours until the platform's time limit kills it. Failing at once, with the likely cause,
costs a minute instead. A machine with no NVIDIA device at all (``docker run`` on a laptop) still runs on the CPU;
``--device cuda`` always requires CUDA; ``--device cpu`` never checks.
"""

from __future__ import annotations

import ctypes
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from synthct.paths import settings

LOG = logging.getLogger(__name__)
#: Where device nodes are looked for (a module attribute so tests can point it elsewhere).
DEV_DIR = Path("/dev")
DRIVER_VERSION_FILE = Path("/proc/driver/nvidia/version")
_HIDDEN = {"", "void", "none"}


class DeviceError(RuntimeError):
    """The requested device cannot be used (message: what, and the likely cause)."""


@dataclass(frozen=True)
class DriverInfo:
    """The NVIDIA driver as seen from inside the container (None where unknown).

    Attributes:
        version: kernel module version, e.g. "535.104.05" (from /proc/driver/nvidia/version).
        cuda: highest CUDA version the driver supports, e.g. (12, 2) (``cuDriverGetVersion`` of libcuda).
    """

    version: str | None
    cuda: tuple[int, int] | None

    def describe(self) -> str:
        if self.version is None and self.cuda is None:
            return "none found"
        cuda = f"supports CUDA <= {self.cuda[0]}.{self.cuda[1]}" if self.cuda else "CUDA support unknown"
        return f"{self.version or 'version unknown'} ({cuda})"


def visible_nvidia_devices(dev_dir: Path | None = None, env: Mapping[str, str] | None = None) -> list[str]:
    """Signs of NVIDIA GPUs given to this container: ``/dev/nvidia<N>`` nodes and ``NVIDIA_VISIBLE_DEVICES``."""
    dev_dir = DEV_DIR if dev_dir is None else dev_dir
    signs = [str(p) for p in sorted(dev_dir.glob("nvidia[0-9]*"))]
    visible = (settings(env).nvidia_visible_devices or "").strip()
    if visible.lower() not in _HIDDEN:
        signs.append(f"NVIDIA_VISIBLE_DEVICES={visible}")
    return signs


def driver_info(version_file: Path = DRIVER_VERSION_FILE) -> DriverInfo:
    """The driver version and its CUDA level, without initialising CUDA in torch."""
    version = None
    try:
        match = re.search(r"Kernel Module\s+([0-9][0-9.]*)", version_file.read_text())
        version = match.group(1) if match else None
    except OSError:
        pass
    cuda = None
    try:
        lib = ctypes.CDLL("libcuda.so.1")
        value = ctypes.c_int(0)
        if lib.cuDriverGetVersion(ctypes.byref(value)) == 0 and value.value > 0:
            cuda = (value.value // 1000, (value.value % 1000) // 10)
    except (OSError, AttributeError):
        pass
    return DriverInfo(version, cuda)


def _cudnn() -> str:
    try:
        version = torch.backends.cudnn.version()
    except Exception:  # noqa: BLE001 - a diagnostic must never stop the run
        return "unavailable"
    return "none" if version is None else str(version)


def likely_cause(torch_cuda: str | None, driver: DriverInfo, error: str | None) -> str:
    """Why CUDA is unusable, from the torch build, the driver and the probe's error (one sentence)."""
    if torch_cuda is None:
        return "this torch is a CPU-only build"
    build = tuple(int(x) for x in torch_cuda.split(".")[:2])
    if driver.cuda is not None and driver.cuda < build:
        return (f"the NVIDIA driver ({driver.describe()}) is older than torch's CUDA {torch_cuda} build: use an "
                f"image built with an older CUDA torch (Dockerfile TORCH_CUDA, e.g. cu126) or a newer driver")
    if driver.cuda is None and driver.version is None:
        return ("no NVIDIA driver is visible in the container (no libcuda.so.1, no /proc/driver/nvidia): start it "
                "with the NVIDIA runtime (docker run --gpus all)")
    if error and "no kernel image" in error:
        return (f"this GPU's architecture is not in the torch build ({', '.join(torch.cuda.get_arch_list())})")
    return f"CUDA initialisation failed ({error or 'torch.cuda.is_available() is False'})"


def _probe(device: torch.device) -> str | None:
    """None if a tiny CUDA computation works on ``device``, else the error text."""
    try:
        x = torch.ones(8, device=device)
        torch.cuda.synchronize(device)
        return None if float((x + x).sum()) == 16.0 else "wrong result of a test computation"
    except (RuntimeError, AssertionError) as exc:
        return str(exc).splitlines()[0]


def startup_line(device: torch.device, driver: DriverInfo) -> str:
    """``torch … | CUDA build … | cuDNN … | device … | driver …``."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        dev = f"{device} {props.name} ({props.total_memory / 2**30:.1f} GiB, sm_{props.major}{props.minor})"
    else:
        dev = "cpu"
    return (f"torch {torch.__version__} | CUDA build {torch.version.cuda or 'none'} | cuDNN {_cudnn()} | "
            f"device {dev} | driver {driver.describe()}")


def select_device(requested: str) -> torch.device:
    """Resolve ``requested`` ("auto", "cpu", "cuda", "cuda:N"), log the start-up line, refuse an unusable GPU.

    Raises:
        DeviceError: CUDA requested (explicitly, or by "auto" with NVIDIA devices visible) but unusable; or a bad
            device name.
    """
    try:
        wanted = torch.device("cuda" if requested == "auto" else requested)
    except RuntimeError:
        raise DeviceError(f"unknown device {requested!r} (use auto, cpu, cuda or cuda:N)") from None
    driver = driver_info()
    if wanted.type == "cpu":
        LOG.info("%s", startup_line(wanted, driver))
        return wanted
    if wanted.type != "cuda":
        raise DeviceError(f"unsupported device {requested!r} (use auto, cpu, cuda or cuda:N)")
    error = None if torch.cuda.is_available() else "torch.cuda.is_available() is False"
    if error is None:
        index = wanted.index if wanted.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {requested!r} requested but only {torch.cuda.device_count()} GPU(s) exist")
        wanted = torch.device("cuda", index)
        error = _probe(wanted)
    if error is None:
        LOG.info("%s", startup_line(wanted, driver))
        return wanted
    cpu = torch.device("cpu")
    LOG.info("%s", startup_line(cpu, driver))
    cause = likely_cause(torch.version.cuda, driver, error)
    if requested == "auto":
        signs = visible_nvidia_devices()
        if not signs:
            LOG.info("no NVIDIA device visible: running on the CPU")
            return cpu
        LOG.warning("!" * 100)
        LOG.warning("NVIDIA device(s) visible (%s) but CUDA is unusable: %s", ", ".join(signs), cause)
        LOG.warning("not falling back to the CPU, which would run for hours; --device cpu forces the CPU")
        LOG.warning("!" * 100)
        raise DeviceError(f"NVIDIA device(s) visible ({', '.join(signs)}) but CUDA is unusable: {cause}")
    raise DeviceError(f"device {requested!r} requested but CUDA is unusable: {cause}")
