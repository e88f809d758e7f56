"""Start-up line, and the refusal to fall back to the CPU when NVIDIA devices are visible but CUDA is unusable.

This machine has a CPU-only torch and no NVIDIA device, so "devices visible without CUDA" is simulated the way a
container sees it: a ``/dev/nvidia0`` node (a file in a folder standing in for /dev) or ``NVIDIA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from testutils import files_under, make_gc_folder, write_models_json

from synthct.challenge import diagnostics
from synthct.challenge.algorithm import main
from synthct.challenge.diagnostics import DriverInfo, likely_cause, visible_nvidia_devices

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="simulates a machine whose CUDA is unusable")


@pytest.fixture
def no_devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    dev = tmp_path / "dev"
    dev.mkdir()
    monkeypatch.setattr(diagnostics, "DEV_DIR", dev)
    monkeypatch.delenv("NVIDIA_VISIBLE_DEVICES", raising=False)
    return dev


@pytest.fixture
def case(tmp_path: Path, tiny_model: Path, porcine_images) -> tuple[Path, Path]:
    app = tmp_path / "app"
    write_models_json(app, tiny_model)
    image, mask = porcine_images
    crop = (slice(20, 120), slice(30, 150), slice(0, 16))
    return app, make_gc_folder(tmp_path / "in", image[crop], mask[crop])


def _run(app: Path, inp: Path, out: Path, device: str) -> int:
    return main(["--input", str(inp), "--output", str(out), "--device", device], app_root=app)


def test_visible_devices_from_nodes_and_environment(tmp_path: Path) -> None:
    (tmp_path / "nvidia0").touch()
    (tmp_path / "nvidiactl").touch()  # control nodes alone are no GPU
    assert visible_nvidia_devices(tmp_path, {}) == [str(tmp_path / "nvidia0")]
    assert visible_nvidia_devices(tmp_path / "none", {"NVIDIA_VISIBLE_DEVICES": "all"}) == \
        ["NVIDIA_VISIBLE_DEVICES=all"]
    for hidden in ("", "void", "none", "NONE"):
        assert visible_nvidia_devices(tmp_path / "none", {"NVIDIA_VISIBLE_DEVICES": hidden}) == []


def test_likely_cause_names_an_old_driver() -> None:
    cause = likely_cause("12.6", DriverInfo("520.61.05", (11, 8)), "torch.cuda.is_available() is False")
    assert "driver (520.61.05 (supports CUDA <= 11.8)) is older than torch's CUDA 12.6 build" in cause
    assert "CPU-only build" in likely_cause(None, DriverInfo(None, None), None)
    assert "no NVIDIA driver is visible" in likely_cause("13.0", DriverInfo(None, None), "x")
    assert "initialisation failed (boom)" in likely_cause("12.6", DriverInfo("560.1", (12, 6)), "boom")


def _lines(err: str, level: str) -> list[str]:
    """Messages of ``level`` in main()'s log output ("HH:MM:SS LEVEL logger: message")."""
    return [ln.split(": ", 1)[1] for ln in err.splitlines() if f" {level} synthct" in ln]


def test_startup_line_on_the_cpu(no_devices: Path, case, tmp_path: Path, capsys) -> None:
    app, inp = case
    assert _run(app, inp, tmp_path / "out", "auto") == 0  # no NVIDIA device: the CPU, as on a laptop
    lines = [m for m in _lines(capsys.readouterr().err, "INFO") if m.startswith("torch ")]
    assert lines == [f"torch {torch.__version__} | CUDA build {torch.version.cuda or 'none'} | cuDNN none | "
                     f"device cpu | driver {diagnostics.driver_info().describe()}"]
    assert len(files_under(tmp_path / "out")) == 1


@pytest.mark.parametrize("sign", ["node", "env"])
def test_visible_devices_without_cuda_fail_at_once(sign: str, no_devices: Path, case, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    if sign == "node":
        (no_devices / "nvidia0").touch()
    else:
        monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "GPU-1234")
    app, inp = case
    assert _run(app, inp, tmp_path / "out", "auto") == 2
    err = capsys.readouterr().err
    warnings = _lines(err, "WARNING")
    assert any("NVIDIA device(s) visible" in w and "CUDA is unusable" in w and "CPU-only build" in w
               for w in warnings), err
    errors = _lines(err, "ERROR")
    assert len(errors) == 1 and "CUDA is unusable" in errors[0]
    assert files_under(tmp_path / "out") == []  # failed before reading the case: nothing written


def test_device_cpu_forces_the_cpu_even_with_visible_devices(no_devices: Path, case, tmp_path: Path) -> None:
    (no_devices / "nvidia0").touch()
    app, inp = case
    assert _run(app, inp, tmp_path / "out", "cpu") == 0
    assert len(files_under(tmp_path / "out")) == 1


def test_device_cuda_always_requires_cuda(no_devices: Path, case, tmp_path: Path, capsys) -> None:
    app, inp = case
    assert _run(app, inp, tmp_path / "out", "cuda") == 2
    (error,) = _lines(capsys.readouterr().err, "ERROR")
    assert error.startswith("device 'cuda' requested but CUDA is unusable")
    assert _run(app, inp, tmp_path / "out", "tpu") == 2
    assert "unknown device 'tpu'" in capsys.readouterr().err
    assert files_under(tmp_path / "out") == []
