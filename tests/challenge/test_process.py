"""process.py on grand-challenge folders built from the real porcine MR + mask, and every bad-input case."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from testutils import REPO, files_under, make_gc_folder, write_models_json

from synthct.challenge.algorithm import main


@pytest.fixture
def app(tmp_path: Path, tiny_model: Path) -> Path:
    """An application root whose resources/models.json routes every MRI region to the tiny model."""
    root = tmp_path / "app"
    write_models_json(root, tiny_model)
    return root


def run(app: Path, inp: Path, out: Path) -> int:
    return main(["--input", str(inp), "--output", str(out), "--device", "cpu"], app_root=app)


def check_output(out: Path, image: sitk.Image, mask: sitk.Image, name: str = "case-uuid.mha") -> np.ndarray:
    files = files_under(out)
    assert files == [out / "images" / "synthetic-ct" / name]
    sct = sitk.ReadImage(str(files[0]))
    assert sct.GetSize() == image.GetSize()
    assert sct.GetSpacing() == image.GetSpacing()
    assert sct.GetOrigin() == image.GetOrigin()
    assert sct.GetDirection() == image.GetDirection()
    assert sct.GetPixelID() == sitk.sitkFloat32
    hu = sitk.GetArrayFromImage(sct)
    body = sitk.GetArrayFromImage(mask) > 0
    assert hu.min() >= -1024 and hu.max() <= 3071
    assert np.all(hu[~body] == -1000.0)
    assert np.unique(hu[body]).size > 100  # a real prediction inside the body, not a constant
    return hu


def test_process_py_end_to_end_on_real_porcine_mr(app: Path, tmp_path: Path, porcine_images) -> None:
    """The real entry point, as a subprocess, on a grand-challenge folder."""
    image, mask = porcine_images
    inp = make_gc_folder(tmp_path / "in", image, mask)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(REPO / "process.py"), "--input", str(inp), "--output", str(out), "--device", "cpu",
         "--models", str(app / "resources" / "models.json")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    check_output(out, image, mask)


def test_non_identity_direction_keeps_geometry_and_values(app: Path, tmp_path: Path, porcine_images) -> None:
    image, mask = porcine_images
    identity = check_output_of(app, tmp_path / "a", image, mask)
    rotated_dir = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # 90° about z
    image2, mask2 = sitk.Image(image), sitk.Image(mask)
    for im in (image2, mask2):
        im.SetDirection(rotated_dir)
        im.SetOrigin((12.5, -40.0, 7.25))
    rotated = check_output_of(app, tmp_path / "b", image2, mask2)
    np.testing.assert_array_equal(identity, rotated)  # prediction runs on the voxel grid


def check_output_of(app: Path, root: Path, image: sitk.Image, mask: sitk.Image) -> np.ndarray:
    inp = make_gc_folder(root / "in", image, mask)
    assert run(app, inp, root / "out") == 0
    return check_output(root / "out", image, mask)


def _crop(im: sitk.Image) -> sitk.Image:
    return im[:, :, :20]


Mutator = Callable[[Path, sitk.Image, sitk.Image], None]


def _write(path: Path, im: sitk.Image) -> None:
    sitk.WriteImage(im, str(path))


def _img(root: Path) -> Path:
    return next((root / "images" / "mri").iterdir())


def _mask(root: Path) -> Path:
    return next((root / "images" / "body").iterdir())


def _nan(root: Path, image: sitk.Image, mask: sitk.Image) -> None:
    arr = sitk.GetArrayFromImage(image).astype(np.float32)
    arr[3, 50, 50] = np.nan
    bad = sitk.GetImageFromArray(arr)
    bad.CopyInformation(image)
    _write(_img(root), bad)


def _mask_values(values: np.ndarray) -> Mutator:
    def mutate(root: Path, image: sitk.Image, mask: sitk.Image) -> None:
        bad = sitk.GetImageFromArray(values.astype(np.uint8))
        bad.CopyInformation(mask)
        _write(_mask(root), bad)
    return mutate


def _shifted_mask(root: Path, image: sitk.Image, mask: sitk.Image) -> None:
    moved = sitk.Image(mask)
    moved.SetOrigin(tuple(o + 2.0 for o in mask.GetOrigin()))
    _write(_mask(root), moved)


SHAPE = (20, 186, 147)
CASES: dict[str, tuple[Mutator, str]] = {
    "missing image folder": (lambda r, i, m: [p.unlink() for p in (r / "images" / "mri").iterdir()]
                             and (r / "images" / "mri").rmdir(), "expected exactly one of images/mri or images/cbct"),
    "both tasks present": (lambda r, i, m: (r / "images" / "cbct").mkdir(), "found 2"),
    "extra image file": (lambda r, i, m: _write(r / "images" / "mri" / "second.mha", i),
                         "expected exactly one image file, found 2"),
    "missing mask file": (lambda r, i, m: _mask(r).unlink(), "expected exactly one image file, found 0"),
    "mask size mismatch": (lambda r, i, m: _write(_mask(r), m[:, :, :10]), "mask grid differs from the image"),
    "mask geometry mismatch": (_shifted_mask, "origin"),
    "2-D image": (lambda r, i, m: _write(_img(r), i[:, :, 0]), "expected a 3-D image"),
    "NaN voxels": (_nan, "1 voxels are NaN or infinite"),
    "non-binary mask": (_mask_values(np.arange(np.prod(SHAPE)).reshape(SHAPE) % 3),
                        "mask is not binary: values [0, 1, 2]"),
    "empty mask": (_mask_values(np.zeros(SHAPE)), "mask is empty"),
    "unknown region": (lambda r, i, m: (r / "region.json").write_text('"Pelvis"'), "unknown region 'Pelvis'"),
    "region not JSON": (lambda r, i, m: (r / "region.json").write_text("Head and Neck"), "not valid JSON"),
    "missing region.json": (lambda r, i, m: (r / "region.json").unlink(), "region.json: file not found"),
    "unreadable image": (lambda r, i, m: _img(r).write_bytes(b"not an image"), "unreadable image"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gives_one_line_and_no_output(case: str, app: Path, tmp_path: Path, porcine_images,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    image, mask = (_crop(im) for im in porcine_images)
    inp = make_gc_folder(tmp_path / "in", image, mask)
    mutate, message = CASES[case]
    mutate(inp, image, mask)
    out = tmp_path / "out"
    assert run(app, inp, out) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err
    assert files_under(out) == []


def test_no_model_for_task(tmp_path: Path, tiny_model: Path, porcine_images, capsys) -> None:
    app = tmp_path / "app"
    write_models_json(app, tiny_model, tasks=("cbct",))
    image, mask = (_crop(im) for im in porcine_images)
    inp = make_gc_folder(tmp_path / "in", image, mask)
    assert run(app, inp, tmp_path / "out") == 1
    assert "no model for task 'mri' and region 'HN'" in capsys.readouterr().err
    assert files_under(tmp_path / "out") == []


def test_model_folder_without_manifest(tmp_path: Path, porcine_images, capsys) -> None:
    app = tmp_path / "app"
    (tmp_path / "empty-model").mkdir()
    write_models_json(app, tmp_path / "empty-model")
    inp = make_gc_folder(tmp_path / "in", *(_crop(im) for im in porcine_images))
    assert run(app, inp, tmp_path / "out") == 1
    assert "has no synthct.json" in capsys.readouterr().err


def test_unwritable_output(app: Path, tmp_path: Path, porcine_images, capsys) -> None:
    inp = make_gc_folder(tmp_path / "in", *(_crop(im) for im in porcine_images))
    blocker = tmp_path / "out"
    blocker.write_text("a file where the output folder should be")
    assert run(app, inp, blocker) == 1
    assert "output folder is not writable" in capsys.readouterr().err
    assert blocker.read_text().startswith("a file")


def test_failure_during_prediction_leaves_no_partial_output(app: Path, tmp_path: Path, porcine_images,
                                                            monkeypatch, capsys) -> None:
    from synthct.inference import predictor

    def boom(self, *args, **kwargs):
        raise RuntimeError("simulated crash in the middle of prediction")

    monkeypatch.setattr(predictor.SyntheticCTPredictor, "predict", boom)
    inp = make_gc_folder(tmp_path / "in", *(_crop(im) for im in porcine_images))
    out = tmp_path / "out"
    assert run(app, inp, out) == 2
    assert "internal error: RuntimeError: simulated crash" in capsys.readouterr().err
    assert not out.exists()


def test_region_json_object_form_and_output_name(app: Path, tmp_path: Path, porcine_images) -> None:
    image, mask = (_crop(im) for im in porcine_images)
    inp = make_gc_folder(tmp_path / "in", image, mask, region="Thorax", name="abc.nii.gz")
    (inp / "region.json").write_text(json.dumps({"region": "Thorax"}))
    assert run(app, inp, tmp_path / "out") == 0
    check_output(tmp_path / "out", image, mask, name="abc.mha")
