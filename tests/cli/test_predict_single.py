"""Single-image ``synthct predict`` goes through ``load_pair`` / ``load_predictor`` / ``synthesise``, like
``process.py`` and batch mode: the task check, the mask and image rules and the finite-output check hold for it too,
each ending in one ERROR line, exit code 1 and no output file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from testutils import crop

from synthct.cli.main import main


@pytest.fixture(scope="module")
def cbct_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from synthct.network.export import export_model
    from synthct.network.scaffold import random_training_results

    results = random_training_results(tmp_path_factory.mktemp("results") / "Dataset920", task="cbct",
                                      features=(4, 8), patch_size=(16, 32, 32), spacing=(2.5, 1.0, 1.0))
    return export_model(results, tmp_path_factory.mktemp("models") / "cbct-tiny")


@pytest.fixture()
def pair(tmp_path: Path, porcine_images) -> tuple[sitk.Image, sitk.Image]:
    image, mask = (crop(x, (0, 30, 20)) for x in porcine_images)
    sitk.WriteImage(image, str(tmp_path / "mr.mha"))
    sitk.WriteImage(mask, str(tmp_path / "mask.mha"))
    return image, mask


def _predict(model: Path, image: Path, mask: Path, out: Path, *extra: str) -> int:
    return main(["predict", "--model", str(model), "--image", str(image), "--mask", str(mask), "--out", str(out),
                 "--device", "cpu", "--step", "0.5", *extra])


def _one_error(capsys) -> str:
    errors = [line for line in capsys.readouterr().err.splitlines() if " ERROR " in line]
    assert len(errors) == 1, errors
    return errors[0]


def test_a_model_of_another_task_is_refused(tmp_path: Path, pair, cbct_model: Path, capsys) -> None:
    out = tmp_path / "sct.mha"
    assert _predict(cbct_model, tmp_path / "mr.mha", tmp_path / "mask.mha", out) == 1  # the name says MR
    assert "model is for task 'cbct', case is 'mri'" in _one_error(capsys)
    (tmp_path / "mr.mha").rename(tmp_path / "scan.mha")
    assert _predict(cbct_model, tmp_path / "scan.mha", tmp_path / "mask.mha", out, "--task", "mri") == 1
    assert "model is for task 'cbct', case is 'mri'" in _one_error(capsys)
    assert _predict(cbct_model, tmp_path / "scan.mha", tmp_path / "mask.mha", out) == 1  # the task is unknown
    assert re.search(r"scan\.mha: task unknown: .*pass --task mri\|cbct", _one_error(capsys))
    assert not out.exists()


def test_the_task_comes_from_a_synthrad_id_too(tmp_path: Path, pair, cbct_model: Path, capsys) -> None:
    (tmp_path / "mr.mha").rename(tmp_path / "2HNA001.mha")  # task 2 = cbct: the model fits
    out = tmp_path / "sct.mha"
    assert _predict(cbct_model, tmp_path / "2HNA001.mha", tmp_path / "mask.mha", out) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert sitk.ReadImage(str(out)).GetSize() == pair[0].GetSize()


@pytest.mark.parametrize(("damage", "message"), [
    ("mask_255_and_7", "mask is not binary: values [0, 7, 255]"),
    ("mask_empty", "mask is empty (no body voxel)"),
    ("mask_shifted", "mask grid differs from the image mr.mha: origin"),
    ("image_nan", "3 voxels are NaN or infinite"),
])
def test_bad_input_rules_hold_for_a_single_image(tmp_path: Path, pair, tiny_model: Path, capsys, damage: str,
                                                 message: str) -> None:
    image, mask = pair
    arr, body = sitk.GetArrayFromImage(image).astype(np.float32), sitk.GetArrayFromImage(mask)
    if damage == "mask_255_and_7":
        body = (body * 255).astype(np.uint8)
        body[0, 0, :3] = 7
    elif damage == "mask_empty":
        body = np.zeros_like(body)
    elif damage == "image_nan":
        arr[0, 0, :3] = np.nan
    for name, array, ref in (("mr.mha", arr, image), ("mask.mha", body, mask)):
        written = sitk.GetImageFromArray(array)
        written.CopyInformation(ref)
        if damage == "mask_shifted" and name == "mask.mha":
            written.SetOrigin(tuple(o + 1.0 for o in ref.GetOrigin()))
        sitk.WriteImage(written, str(tmp_path / name))
    out = tmp_path / "sct.mha"
    assert _predict(tiny_model, tmp_path / "mr.mha", tmp_path / "mask.mha", out) == 1
    assert message in _one_error(capsys)
    assert not out.exists() and not list(tmp_path.glob(".*"))


def test_a_non_finite_prediction_is_not_written(tmp_path: Path, pair, tiny_model: Path, capsys, monkeypatch) -> None:
    from synthct.inference.predictor import SyntheticCTPredictor

    monkeypatch.setattr(SyntheticCTPredictor, "predict", lambda self, image, mask, spacing, budget=None:
                        np.full(image.shape, np.nan, np.float32))
    out = tmp_path / "sct.mha"
    assert _predict(tiny_model, tmp_path / "mr.mha", tmp_path / "mask.mha", out) == 1
    assert "NaN or infinite voxels" in _one_error(capsys) and not out.exists()
