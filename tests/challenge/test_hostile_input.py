"""process.py under hostile and broken input (issue 15): every case is a real volume (the porcine sample) written as a
damaged or unusual copy, run through the entry point; each asserts one ERROR line + exit 1 + nothing written, or a
correct sCT."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from testutils import REPO, files_under, make_gc_folder, write_models_json

from synthct.challenge.algorithm import main
from synthct.io.image import read_image

HEADER_END = b"ElementDataFile = LOCAL\n"



def run(app: Path, inp: Path, out: Path) -> int:
    return main(["--input", str(inp), "--output", str(out), "--device", "cpu"], app_root=app)


def one_error(err: str, message: str) -> str:
    errors = [line for line in err.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err
    after = err.splitlines()[err.splitlines().index(errors[0]) + 1:]
    assert not [line for line in after if line.startswith(("ITK ERROR", "Reason:", "Exception thrown"))], err
    return errors[0]


def assert_rejected(app: Path, inp: Path, tmp_path: Path, capsys, message: str) -> str:
    out = tmp_path / "out"
    assert run(app, inp, out) == 1
    line = one_error(capsys.readouterr().err, message)
    assert files_under(out) == []
    return line


def image_file(root: Path, task: str = "mri") -> Path:
    return next((root / "images" / task).iterdir())


def split_mha(path: Path) -> tuple[bytes, bytes]:
    data = path.read_bytes()
    cut = data.index(HEADER_END) + len(HEADER_END)
    return data[:cut], data[cut:]


# --- 1. corrupt or truncated payloads, 7. their error text -----------------------------------------------------------

def _flip(payload: bytes) -> bytes:
    mid = len(payload) // 2
    return payload[:mid] + bytes(b ^ 0xFF for b in payload[mid:mid + 64]) + payload[mid + 64:]


def _corrupt_mha(change: Callable[[bytes, bytes], bytes]) -> Callable[[Path], None]:
    """Rewrite the image zlib-compressed (as grand-challenge stores .mha), then change (header, payload)."""
    def mutate(path: Path) -> None:
        sitk.WriteImage(sitk.ReadImage(str(path)), str(path), useCompression=True)
        path.write_bytes(change(*split_mha(path)))
    return mutate


CORRUPT: dict[str, tuple[Callable[[Path], None], str]] = {
    "flipped bytes": (_corrupt_mha(lambda h, p: h + _flip(p)), "corrupt compressed data (zlib"),
    "random payload": (_corrupt_mha(lambda h, p: h + np.random.default_rng(0).bytes(len(p))),
                       "corrupt compressed data (zlib"),
    "truncated file": (_corrupt_mha(lambda h, p: h + p[: len(p) // 3]), "truncated data: CompressedDataSize"),
    "truncated header": (lambda path: path.write_bytes(path.read_bytes()[:200]), "the file ends inside its header"),
    "DimSize larger than the data": (
        _corrupt_mha(lambda h, p: h.replace(b"DimSize = 147 186 20", b"DimSize = 147 186 21") + p),
        "DimSize 147 x 186 x 21 of MET_SHORT needs 1148364 bytes, the compressed data decode to 1093680"),
    "singular direction": (
        _corrupt_mha(lambda h, p: h.replace(b"TransformMatrix = 1 0 0 0 1 0 0 0 1",
                                            b"TransformMatrix = 1 0 0 1 0 0 0 0 1") + p),
        "unreadable image (singular direction matrix"),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_mha_gives_one_line_and_no_output(case: str, app: Path, tmp_path: Path, small, capsys) -> None:
    inp = make_gc_folder(tmp_path / "in", *small)
    mutate, message = CORRUPT[case]
    mutate(image_file(inp))
    assert_rejected(app, inp, tmp_path, capsys, message)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_corrupt_gzip_payload_of_nifti_and_nrrd(suffix: str, app: Path, tmp_path: Path, small, capsys) -> None:
    """ITK's NIfTI and NRRD readers return whatever a damaged gzip stream decodes to (about half the voxels wrong)."""
    inp = make_gc_folder(tmp_path / "in", *small, name="case" + suffix)
    path = image_file(inp)
    sitk.WriteImage(small[0], str(path), useCompression=True)
    data = path.read_bytes()
    path.write_bytes(data[:1000] + _flip(data[1000:]))
    assert_rejected(app, inp, tmp_path, capsys, "corrupt compressed data (gzip")


# --- 2. data outside the case -----------------------------------------------------------------------------------------

def _uncompressed_mha(path: Path, image: sitk.Image) -> tuple[bytes, bytes]:
    sitk.WriteImage(image, str(path), useCompression=False)
    return split_mha(path)


def test_mha_data_file_outside_the_case_is_refused(app: Path, tmp_path: Path, small, capsys) -> None:
    inp = make_gc_folder(tmp_path / "in", *small)
    path = image_file(inp)
    header, payload = _uncompressed_mha(path, small[0])
    for target in ("/dev/zero", str(tmp_path / "elsewhere.raw")):
        (tmp_path / "elsewhere.raw").write_bytes(payload)  # the real voxels, one folder up
        path.write_bytes(header.replace(HEADER_END, f"ElementDataFile = {target}\n".encode()))
        assert_rejected(app, inp, tmp_path, capsys,
                        f"ElementDataFile = {target} points outside the file; a .mha must hold its data")


def test_nrrd_detached_data_is_refused(app: Path, tmp_path: Path, small, capsys) -> None:
    inp = make_gc_folder(tmp_path / "in", *small, name="case.nrrd")
    path = image_file(inp)
    sitk.WriteImage(small[0], str(path), useCompression=False)
    header, _, payload = path.read_bytes().partition(b"\n\n")
    (tmp_path / "elsewhere.raw").write_bytes(payload)
    path.write_bytes(header + f"\ndata file: {tmp_path / 'elsewhere.raw'}\n\n".encode())
    assert_rejected(app, inp, tmp_path, capsys, "detached data (data file: ")


def test_mhd_reads_only_a_data_file_in_its_own_folder(tmp_path: Path, small) -> None:
    folder = tmp_path / "case"
    folder.mkdir()
    sitk.WriteImage(small[0], str(folder / "mr.mhd"), useCompression=False)  # writes mr.raw next to it
    array, _, _ = read_image(folder / "mr.mhd")
    np.testing.assert_array_equal(array, sitk.GetArrayFromImage(small[0]))
    header = (folder / "mr.mhd").read_text()
    (tmp_path / "up.raw").write_bytes((folder / "mr.raw").read_bytes())
    (folder / "sub").mkdir()
    (folder / "sub" / "down.raw").write_bytes((folder / "mr.raw").read_bytes())
    for name, message in (("../up.raw", "points outside the folder"), ("sub/down.raw", "points outside the folder"),
                          (str(tmp_path / "up.raw"), "points outside the folder"), ("/dev/zero", "outside"),
                          ("missing.raw", "no such file in the folder"), ("LOCAL", "must name one data file")):
        (folder / "mr.mhd").write_text(header.replace("ElementDataFile = mr.raw", f"ElementDataFile = {name}"))
        with pytest.raises(ValueError, match=message):
            read_image(folder / "mr.mhd")


# --- 3. region.json of the wrong JSON type ----------------------------------------------------------------------------

@pytest.mark.parametrize("text", ['["Head and Neck"]', '{"region": "Thorax", "x": 1}',
                                  '{"region": {"name": "Thorax"}}', "42", "null"])
def test_region_json_of_wrong_type(text: str, app: Path, tmp_path: Path, small, capsys) -> None:
    inp = make_gc_folder(tmp_path / "in", *small)
    (inp / "region.json").write_text(text)
    line = assert_rejected(app, inp, tmp_path, capsys, 'region.json: expected one JSON string such as "Head and Neck"')
    assert "internal error" not in line


# --- 4. non-finite output ---------------------------------------------------------------------------------------------

def _as_float64(image: sitk.Image, scale: float) -> sitk.Image:
    array = sitk.GetArrayFromImage(image).astype(np.float64)
    out = sitk.GetImageFromArray(array * (scale / np.abs(array).max()))
    out.CopyInformation(image)
    return out


def test_finite_input_near_float64_max_gives_the_same_sct(app: Path, tmp_path: Path, tile) -> None:
    image, mask = tile
    results = []
    for name, scale in (("plain", 1000.0), ("huge", 1.7e308)):
        inp = make_gc_folder(tmp_path / name / "in", _as_float64(image, scale), mask)
        assert run(app, inp, tmp_path / name / "out") == 0
        sct = sitk.GetArrayFromImage(sitk.ReadImage(str(files_under(tmp_path / name / "out")[0])))
        assert np.isfinite(sct).all()
        results.append(sct)
    np.testing.assert_allclose(results[1], results[0], atol=1e-2)  # the z-score is scale-free


def test_non_finite_prediction_is_not_written(tmp_path: Path, tiny_model: Path, tile, capsys) -> None:
    """A model folder whose weights hold a NaN (a damaged file) predicts NaN: refused, nothing written."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    model = shutil.copytree(tiny_model, tmp_path / "nan-model")
    weights = model / "fold_0" / "model.safetensors"
    with safe_open(str(weights), framework="pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        metadata = handle.metadata()
    first = next(key for key in sorted(tensors) if key.startswith("encoder") and tensors[key].ndim == 5)
    tensors[first].view(-1)[0] = float("nan")
    save_file(tensors, str(weights), metadata=metadata)
    app = tmp_path / "app"
    write_models_json(app, model)
    inp = make_gc_folder(tmp_path / "in", *tile)
    assert_rejected(app, inp, tmp_path, capsys, "NaN or infinite voxels")


# --- 5. resampling bounds ---------------------------------------------------------------------------------------------

def _respaced(images: tuple[sitk.Image, sitk.Image], spacing: tuple[float, float, float]):
    out = []
    for im in images:
        im = sitk.Image(im)
        im.SetSpacing(spacing)
        out.append(im)
    return out


@pytest.mark.parametrize(("spacing", "message"), [
    ((1.0, 20.0, 2.5), "implausible voxel spacing: resampling (20, 186, 147) voxels at (2.5, 20, 1) mm"),
    ((0.01, 0.01, 2.5), "scales by y 0.01, x 0.01"),
    ((7.5, 7.5, 18.75), "image too large: resampling (20, 186, 147) voxels at (18.75, 7.5, 7.5) mm (z, y, x) → "
                        "(150, 1395, 1102)"),
])
def test_resampled_grid_is_bounded_before_allocating(spacing, message: str, app: Path, tmp_path: Path, small,
                                                     capsys) -> None:
    inp = make_gc_folder(tmp_path / "in", *_respaced(small, spacing))
    t0 = time.perf_counter()
    assert_rejected(app, inp, tmp_path, capsys, message)
    assert time.perf_counter() - t0 < 60  # refused up front, not after predicting (no timing claim beyond that)


def test_grid_limits_on_the_issue_sizes() -> None:
    from synthct.inference.grid import MAX_GRID_VOXELS, GridError, working_shape

    with pytest.raises(GridError, match="scales by y 20, x 20"):  # the issue's 192 × 3720 × 2940 grid
        working_shape((192, 186, 147), (3.0, 20.0, 20.0), (3.0, 1.0, 1.0))
    # the largest real SynthRAD2025 volume, and the same at 3 mm slices for a 1 mm isotropic model, still fit
    assert working_shape((200, 512, 512), (3.0, 1.0, 1.0), (3.0, 1.0, 1.0)) == (200, 512, 512)
    assert np.prod(working_shape((200, 512, 512), (3.0, 1.0, 1.0), (1.0, 1.0, 1.0))) <= MAX_GRID_VOXELS


# --- 6. file modes ----------------------------------------------------------------------------------------------------

def test_output_is_world_readable_under_the_usual_umask(app: Path, tmp_path: Path, tile) -> None:
    """0644 files and 0755 folders under umask 022 (docker's default), not mkstemp's 0600."""
    inp = make_gc_folder(tmp_path / "in", *tile)
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        assert run(app, inp, out) == 0
    finally:
        os.umask(old)
    (sct,) = files_under(out)
    assert sct.stat().st_mode & 0o777 == 0o644
    for folder in (out, out / "images", sct.parent):
        assert folder.stat().st_mode & 0o777 == 0o755


# --- 7. write failures on one line ------------------------------------------------------------------------------------

def _process(inp: Path, out: Path, app: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "process.py"), "--input", str(inp), "--output", str(out), "--device", "cpu",
         "--models", str(app / "resources" / "models.json")], text=True, **kwargs)


def test_write_failure_is_one_line(app: Path, tmp_path: Path, tile) -> None:
    """A file-size limit below the sCT's size makes ITK's writer fail (EFBIG), as a full disk does (ENOSPC)."""
    import resource

    inp = make_gc_folder(tmp_path / "in", *tile)
    out = tmp_path / "out"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    proc = _process(inp, out, app, stderr=subprocess.PIPE, preexec_fn=limit)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    one_error(err, "cannot write output (file too large for the file system or for this process's file-size limit")
    assert files_under(out) == []


def test_disk_full_is_one_line(app: Path, tmp_path: Path, tile, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(out)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.decode().strip()})")
    try:
        inp = make_gc_folder(tmp_path / "in", *tile)
        assert run(app, inp, out) == 1
        one_error(capsys.readouterr().err, "cannot write output (disk full: ")
        assert files_under(out) == []
    finally:
        subprocess.run(["umount", str(out)], check=True)


# --- 8. signals -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_signal_during_prediction_cleans_up(signum: int, code: int, tmp_path: Path, tiny_model: Path,
                                            porcine_images) -> None:
    """A real slow case: the porcine volume stacked three times (120 × 186 × 147) at a sliding-window step of 0.25
    (thousands of tiles, minutes on a CPU); the signal is sent once the tile loop has started."""
    app = tmp_path / "app"
    write_models_json(app, tiny_model, step=0.25)
    big = []
    for im in porcine_images:
        array = sitk.GetArrayFromImage(im)
        stacked = sitk.GetImageFromArray(np.concatenate([array, array[::-1], array]))
        stacked.SetSpacing(im.GetSpacing())
        stacked.SetOrigin(im.GetOrigin())
        big.append(stacked)
    inp = make_gc_folder(tmp_path / "in", *big)
    out = tmp_path / "out"
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        proc = _process(inp, out, app, stderr=err)
        try:
            deadline = time.monotonic() + 240
            while "sliding window:" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert proc.poll() is None, log.read_text()
            assert (out / "images" / "synthetic-ct").is_dir()  # created before predicting
            proc.send_signal(signum)
            assert proc.wait(timeout=60) == code, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    one_error(text, f"stopped by {signal.Signals(signum).name} (exit {code}); nothing written")
    assert not out.exists()


# --- 0/255 masks ------------------------------------------------------------------------------------------------------

def test_mask_stored_as_0_255_is_accepted_with_a_note(app: Path, tmp_path: Path, tile, capsys) -> None:
    image, mask = tile
    reference = make_gc_folder(tmp_path / "ref" / "in", image, mask)
    assert run(app, reference, tmp_path / "ref" / "out") == 0
    mask255 = sitk.GetImageFromArray(sitk.GetArrayFromImage(mask).astype(np.uint8) * 255)
    mask255.CopyInformation(mask)
    inp = make_gc_folder(tmp_path / "in", image, mask255)
    assert run(app, inp, tmp_path / "out") == 0
    assert "mask case-uuid.mha: body value 255 (not 1); every voxel with that value is body" in capsys.readouterr().err
    got, want = (sitk.GetArrayFromImage(sitk.ReadImage(str(files_under(p)[0])))
                 for p in (tmp_path / "out", tmp_path / "ref" / "out"))
    np.testing.assert_array_equal(got, want)


def test_mask_with_three_values_says_how_to_convert(app: Path, tmp_path: Path, small, capsys) -> None:
    image, mask = small
    array = sitk.GetArrayFromImage(mask).astype(np.uint8)
    array[:, :, :40] *= 2
    labels = sitk.GetImageFromArray(array)
    labels.CopyInformation(mask)
    inp = make_gc_folder(tmp_path / "in", image, labels)
    assert_rejected(app, inp, tmp_path, capsys, "mask is not binary: values [0, 1, 2]; expected 0 (outside) and one "
                    "positive value (body); convert it with e.g. SimpleITK sitk.Cast(mask > 0, sitk.sitkUInt8)")

