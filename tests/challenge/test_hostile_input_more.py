"""process.py under the second adversarial run's inputs (issue 20, §7): header variants MetaIO accepts, crashes,
shared output roots, silent nonsense on valid input, names and messages, memory before refusal, and the smaller
items. Each case runs through the entry point and asserts one ERROR line + exit 1 + nothing written, or a correct
sCT."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from test_hostile_input import HEADER_END, assert_rejected, image_file, one_error, run, split_mha
from testutils import REPO, files_under, make_gc_folder

from synthct.challenge import algorithm


def _compressed(path: Path) -> tuple[bytes, bytes]:
    sitk.WriteImage(sitk.ReadImage(str(path)), str(path), useCompression=True)
    return split_mha(path)


# --- 7.1 header variants MetaIO accepts -------------------------------------------------------------------------------

def _with_blank_line(header: bytes) -> bytes:
    return header.replace(b"\nNDims", b"\n\nNDims")


def _colons(header: bytes) -> bytes:
    return b"\n".join(line.replace(b" = ", b": ", 1) for line in header.split(b"\n"))


@pytest.mark.parametrize("variant", [_with_blank_line, _colons], ids=["blank line", "colon separator"])
def test_header_variants_cannot_bypass_the_check(variant, app: Path, tmp_path: Path, small, capsys) -> None:
    inp = make_gc_folder(tmp_path / "in", *small)
    path = image_file(inp)
    header, payload = _compressed(path)
    elsewhere = tmp_path / "elsewhere.raw"
    elsewhere.write_bytes(b"\0" * 2_000_000)
    for target in ("/dev/zero", str(elsewhere)):
        sep = b": " if variant is _colons else b" = "
        path.write_bytes(variant(header).replace(HEADER_END.replace(b" = ", sep),
                                                 b"ElementDataFile" + sep + target.encode() + b"\n"))
        assert_rejected(app, inp, tmp_path, capsys, f"ElementDataFile = {target} points outside the file")
    mid = len(payload) // 2
    damaged = payload[:mid] + bytes(b ^ 0xFF for b in payload[mid:mid + 64]) + payload[mid + 64:]
    path.write_bytes(variant(header) + damaged)
    assert_rejected(app, inp, tmp_path, capsys, "corrupt compressed data (zlib")


def test_compressed_payload_without_its_size_is_refused(app: Path, tmp_path: Path, small, capsys) -> None:
    inp = make_gc_folder(tmp_path / "in", *small)
    path = image_file(inp)
    header, payload = _compressed(path)
    lines = [line for line in header.split(b"\n") if not line.startswith(b"CompressedDataSize")]
    path.write_bytes(b"\n".join(lines) + payload)
    assert_rejected(app, inp, tmp_path, capsys, "CompressedData = True without CompressedDataSize")


HEADER_EDITS = {
    "HeaderSize in a .mha": (lambda h: h.replace(b"NDims", b"HeaderSize = 10000000\nNDims"),
                             "HeaderSize = '10000000' in a .mha: its data must follow the header"),
    "line without a separator": (lambda h: h.replace(b"NDims", b"Comment without separator\nNDims"),
                                 "line 2 'Comment without separator' is not 'Key = Value'"),
    "CompressedDataSize 1.5e5": (lambda h: h[:h.index(b"CompressedDataSize")] + b"CompressedDataSize = 1.5e5\n"
                                 + h[h.index(b"\n", h.index(b"CompressedDataSize")) + 1:],
                                 "CompressedDataSize = '1.5e5' is not a whole number"),
    "ElementNumberOfChannels 0": (lambda h: h.replace(b"ElementType", b"ElementNumberOfChannels = 0\nElementType"),
                                  "ElementNumberOfChannels = 0: expected 1 (a scalar image)"),
    "lower-case key": (lambda h: h.replace(b"ElementDataFile = LOCAL", b"elementdatafile = LOCAL"),
                       "header key 'elementdatafile' must be spelled 'ElementDataFile'"),
    "platform-sized type": (lambda h: h.replace(b"MET_SHORT", b"MET_LONG"), "ElementType = 'MET_LONG' is not"),
}


@pytest.mark.parametrize("case", sorted(HEADER_EDITS))
def test_header_fields_give_a_clear_line(case: str, app: Path, tmp_path: Path, small, capsys) -> None:
    inp = make_gc_folder(tmp_path / "in", *small)
    path = image_file(inp)
    header, payload = _compressed(path)
    edit, message = HEADER_EDITS[case]
    path.write_bytes(edit(header) + payload)
    assert_rejected(app, inp, tmp_path, capsys, message)


# --- 7.2 crashes and internal errors ----------------------------------------------------------------------------------

def _process(inp: Path, out: Path, app: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "process.py"), "--input", str(inp), "--output", str(out),
                           "--device", "cpu", "--models", str(app / "resources" / "models.json")],
                          capture_output=True, text=True, timeout=300)


def test_file_name_that_is_not_utf8_is_refused_not_aborted(app: Path, tmp_path: Path, small) -> None:
    inp = make_gc_folder(tmp_path / "in", *small)
    for folder in ("images/mri", "images/body"):
        os.rename(os.fsencode(inp / folder / "case-uuid.mha"), os.fsencode(inp / folder) + b"/case-\xff.mha")
    proc = _process(inp, tmp_path / "out", app)
    assert proc.returncode == 1, proc.stderr  # was -6 (SIGABRT, C++ std::logic_error)
    one_error(proc.stderr, "case-\\udcff.mha: file name is not valid UTF-8")
    assert files_under(tmp_path / "out") == []


@pytest.mark.parametrize(("text", "message"), [
    ("[" * 100_000, "more than 4096 bytes"),
    ("[" * 2000 + "]" * 2000, "not valid JSON"),  # RecursionError inside the size limit
    ("1" * 5000, "more than 4096 bytes"),
    ("1" * 4000, "got a JSON number: 1111"),
    ('"' + "x" * 10_000_000 + '"', "more than 4096 bytes"),
])
def test_region_json_extremes_are_one_short_line(text: str, message: str, app: Path, tmp_path: Path, small,
                                                 capsys) -> None:
    inp = make_gc_folder(tmp_path / "in", *small)
    (inp / "region.json").write_text(text)
    line = assert_rejected(app, inp, tmp_path, capsys, message)
    assert len(line) < 500 and "internal error" not in line


def test_long_unknown_region_is_quoted_shortened(app: Path, tmp_path: Path, small, capsys) -> None:
    inp = make_gc_folder(tmp_path / "in", *small)
    (inp / "region.json").write_text(json.dumps("y" * 3000))
    line = assert_rejected(app, inp, tmp_path, capsys, "unknown region 'yyy")
    assert len(line) < 500


@pytest.mark.parametrize("which", ["image", "mask", "region.json"])
def test_unreadable_file_is_exit_1_naming_it(which: str, app: Path, tmp_path: Path, small, capsys,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Mode 000 (as root, which reads anyway, the open is made to fail as it does for other users)."""
    inp = make_gc_folder(tmp_path / "in", *small)
    target = {"image": image_file(inp), "mask": image_file(inp, "body"), "region.json": inp / "region.json"}[which]
    target.chmod(0)
    if os.geteuid() == 0:
        real_open = Path.open

        def denied(self, *args, **kwargs):
            if self == target:
                raise PermissionError(13, "Permission denied", str(self))
            return real_open(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", denied)
    line = assert_rejected(app, inp, tmp_path, capsys, f"{target.name}: cannot read the file (Permission denied)")
    assert "internal error" not in line


# --- 7.3 clean-up removes only what this run wrote --------------------------------------------------------------------

def test_clean_up_keeps_another_runs_result(app: Path, tmp_path: Path, small, monkeypatch: pytest.MonkeyPatch,
                                            capsys) -> None:
    """Run A creates the output root; run B writes its sCT there; then A fails: B's sCT stays."""
    inp = make_gc_folder(tmp_path / "in", *small)
    out = tmp_path / "shared" / "out"
    other = out / "images" / "synthetic-ct" / "run-b.mha"

    def b_finishes_then_a_fails(route, task):
        other.write_bytes(b"B's finished sCT")
        raise algorithm.Interrupted(signal.SIGTERM)

    monkeypatch.setattr(algorithm, "load_predictor", b_finishes_then_a_fails)
    with pytest.raises(SystemExit) as stop:
        run(app, inp, out)
    assert stop.value.code == 143
    assert files_under(tmp_path / "shared") == [other] and other.read_bytes() == b"B's finished sCT"
    monkeypatch.setattr(algorithm, "load_predictor", lambda route, task: (_ for _ in ()).throw(
        algorithm.CaseError(route.model_dir, "does not load")))
    shutil.rmtree(tmp_path / "shared")
    assert run(app, inp, out) == 1  # alone: every folder it created is removed again
    assert not (tmp_path / "shared").exists()
    capsys.readouterr()


# --- 7.4 silent nonsense on valid input -------------------------------------------------------------------------------

def test_body_on_one_thin_slice_is_predicted(app: Path, tmp_path: Path, tile, capsys) -> None:
    """A 1 mm slice volume (the model is 2.5 mm) whose body mask covers one slice: nearest resampling lost it."""
    image, mask = (sitk.Image(im) for im in tile)
    for im in (image, mask):
        im.SetSpacing((1.0, 1.0, 1.0))
    body = sitk.GetArrayFromImage(mask)
    thin = np.zeros_like(body)
    thin[7] = body[7]
    assert thin.any()
    thin_mask = sitk.GetImageFromArray(thin)
    thin_mask.CopyInformation(mask)
    inp = make_gc_folder(tmp_path / "in", image, thin_mask)
    assert run(app, inp, tmp_path / "out") == 0
    sct = sitk.GetArrayFromImage(sitk.ReadImage(str(files_under(tmp_path / "out")[0])))
    assert np.all(sct[thin == 0] == -1000) and np.any(sct[thin > 0] != -1000)
    assert "the body mask" in capsys.readouterr().err


@pytest.mark.parametrize(("dtype", "background"), [(np.float32, 1e31), (np.float64, 1e45)])
def test_huge_finite_background_does_not_break_the_prediction(dtype, background: float, app: Path, tmp_path: Path,
                                                              tile) -> None:
    image, mask = tile
    array = sitk.GetArrayFromImage(image).astype(dtype)
    body = sitk.GetArrayFromImage(mask) > 0
    array[~body] = background
    huge = sitk.GetImageFromArray(array)
    huge.CopyInformation(image)
    inp = make_gc_folder(tmp_path / "in", huge, mask)
    assert run(app, inp, tmp_path / "out") == 0
    sct = sitk.GetArrayFromImage(sitk.ReadImage(str(files_under(tmp_path / "out")[0])))
    assert np.isfinite(sct).all() and np.any(sct[body] != -1000)


# --- 7.5 names and messages -------------------------------------------------------------------------------------------

def test_255_byte_file_name_works(app: Path, tmp_path: Path, tile) -> None:
    name = "c" * 251 + ".mha"
    inp = make_gc_folder(tmp_path / "in", *tile, name=name)
    assert run(app, inp, tmp_path / "out") == 0
    assert [p.name for p in files_under(tmp_path / "out")] == [name]


def test_newline_in_a_file_name_stays_one_line(app: Path, tmp_path: Path, small, capsys) -> None:
    inp = make_gc_folder(tmp_path / "in", *small, name="evil\n12:00:00 ERROR fake.mha")
    image_file(inp).write_bytes(b"not an image")
    line = assert_rejected(app, inp, tmp_path, capsys, "unreadable image")
    assert "evil\\n12:00:00 ERROR fake.mha: unreadable image" in line  # escaped, on the one ERROR line


def test_region_json_that_is_not_a_regular_file(app: Path, tmp_path: Path, small, capsys) -> None:
    inp = make_gc_folder(tmp_path / "in", *small)
    (inp / "region.json").unlink()
    (inp / "region.json").symlink_to("/dev/zero")
    assert_rejected(app, inp, tmp_path, capsys, "region.json: not a regular file")


# --- 7.6 memory before refusal ----------------------------------------------------------------------------------------

def write_zero_mha(path: Path, size_xyz: tuple[int, int, int]) -> Path:
    """A valid zlib-compressed MET_UCHAR MetaImage of zeros, streamed (never held in memory)."""
    voxels = size_xyz[0] * size_xyz[1] * size_xyz[2]
    encoder, chunk, parts = zlib.compressobj(1), bytes(1 << 24), []
    for start in range(0, voxels, len(chunk)):
        parts.append(encoder.compress(chunk[: min(len(chunk), voxels - start)]))
    parts.append(encoder.flush())
    payload = b"".join(parts)
    header = (f"ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
              f"CompressedData = True\nCompressedDataSize = {len(payload)}\nTransformMatrix = 1 0 0 0 1 0 0 0 1\n"
              f"Offset = 0 0 0\nElementSpacing = 1 1 1\nDimSize = {' '.join(map(str, size_xyz))}\n"
              "ElementType = MET_UCHAR\nElementDataFile = LOCAL\n")
    path.write_bytes(header.encode() + payload)
    return path


def test_huge_image_is_refused_from_its_header(app: Path, tmp_path: Path, small) -> None:
    """640³ voxels in a few hundred kB: refused before a voxel is read (the child's peak RSS stays that of torch)."""
    inp = make_gc_folder(tmp_path / "in", *small)
    for folder in ("mri", "body"):
        write_zero_mha(inp / "images" / folder / "case-uuid.mha", (640, 640, 640))
    code = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "sys.stderr.write(p.stderr); print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    proc = subprocess.run([sys.executable, "-c", code, sys.executable, str(REPO / "process.py"), "--input", str(inp),
                           "--output", str(tmp_path / "out"), "--device", "cpu", "--models",
                           str(app / "resources" / "models.json")], capture_output=True, text=True, timeout=300)
    returncode, max_rss_kb = map(int, proc.stdout.split())
    assert returncode == 1, proc.stderr
    one_error(proc.stderr, "image too large: size (640, 640, 640) (x, y, z) = 262 M voxels by its header")
    assert max_rss_kb < 262_144 * 3, max_rss_kb  # below three copies of the uint8 volume (each 256 MiB)


# --- 7.7 smaller ------------------------------------------------------------------------------------------------------

def test_sheared_direction_is_refused(app: Path, tmp_path: Path, small, capsys) -> None:
    image, mask = (sitk.Image(im) for im in small)
    for im in (image, mask):
        im.SetDirection((1, 0.3, 0, 0, 1, 0, 0, 0, 1))
    inp = make_gc_folder(tmp_path / "in", image, mask)
    assert_rejected(app, inp, tmp_path, capsys, "is not a rotation (axes not orthonormal")


def test_undocumented_region_key_is_refused(app: Path, tmp_path: Path, small, capsys) -> None:
    inp = make_gc_folder(tmp_path / "in", *small)
    (inp / "region.json").write_text('{"anatomy": "Thorax"}')
    assert_rejected(app, inp, tmp_path, capsys, 'region.json: expected one JSON string such as "Head and Neck"')


def test_after_a_stop_signal_further_ones_are_ignored_until_exit() -> None:
    """A second SIGTERM during the clean-up must not end the process with the signal's default status."""
    before = {sig: signal.getsignal(sig) for sig in algorithm.STOP_SIGNALS}
    try:
        with pytest.raises(algorithm.Interrupted) as stop, algorithm._signals_raise():
            os.kill(os.getpid(), signal.SIGHUP)  # the handler runs before the next bytecode
            pytest.fail("SIGHUP did not stop the case")
        assert stop.value.code == 129
        assert all(signal.getsignal(sig) == signal.SIG_IGN for sig in algorithm.STOP_SIGNALS)
        os.kill(os.getpid(), signal.SIGTERM)  # ignored: this process survives
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    with algorithm._signals_raise():
        pass
    assert {sig: signal.getsignal(sig) for sig in algorithm.STOP_SIGNALS} == before  # no signal: restored


def test_output_folder_symlinked_into_the_input_is_refused(app: Path, tmp_path: Path, small, capsys) -> None:
    inp = make_gc_folder(tmp_path / "in", *small)
    original = image_file(inp).read_bytes()
    out = tmp_path / "out"
    (out / "images").mkdir(parents=True)
    (out / "images" / "synthetic-ct").symlink_to(inp / "images" / "mri")
    assert run(app, inp, out) == 1
    one_error(capsys.readouterr().err, "writing there would overwrite the input; nothing written")
    assert image_file(inp).read_bytes() == original
