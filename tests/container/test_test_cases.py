"""The grand-challenge sample cases in test/ (no Docker): layout, provenance script, simulation, and the same output
checks as the container job, on process.py run in-process with the random-weight smoke-test models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import SimpleITK as sitk
from testutils import REPO, SAMPLES, load_script

from synthct.challenge.algorithm import main
from synthct.challenge.inputs import load_case
from synthct.preprocessing.outline import cbct_fov

TEST = REPO / "test"
TASKS = ("mri", "cbct")
#: Budget for everything committed under test/ (the issue's limit).
TEST_BUDGET_BYTES = 3 * 1024 * 1024
#: Everything derived from shared/data that a fresh clone carries (samples/ + test/).
SAMPLES_AND_TEST_BUDGET_BYTES = 15 * 1024 * 1024


@pytest.fixture(scope="module")
def cases() -> ModuleType:
    return load_script("make_test_cases")


@pytest.fixture(scope="module")
def checker() -> ModuleType:
    return load_script("check_output")


@pytest.fixture(scope="module")
def smoke_app(cases: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An application root with the smoke-test models and models.json, exactly as CI bakes them into the image."""
    app = tmp_path_factory.mktemp("smoke") / "app"
    cases.write_smoke_models(app)
    return app


@pytest.fixture(scope="module")
def outputs(smoke_app: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """process.py (in-process, CPU) on test/<task>/input for both tasks; returns the output roots."""
    root = tmp_path_factory.mktemp("outputs")
    result = {}
    for task in TASKS:
        out = root / task
        argv = ["--input", str(TEST / task / "input"), "--output", str(out), "--device", "cpu"]
        code = main(argv, app_root=smoke_app)
        assert code == 0, f"process.py failed on test/{task}/input"
        result[task] = out
    return result


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file())


@pytest.mark.parametrize("task", TASKS)
def test_case_folder_is_a_grand_challenge_input(task: str, cases: ModuleType) -> None:
    root = TEST / task / "input"
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == sorted(
        [f"images/{task}/{_images(root / 'images' / task)[0].name}",
         f"images/body/{_images(root / 'images' / 'body')[0].name}", "region.json"])
    image, mask = _images(root / "images" / task)[0], _images(root / "images" / "body")[0]
    assert image.suffix == ".mha" and mask.suffix == ".mha"
    assert image.name != mask.name  # grand-challenge names every file with its own UUID
    assert json.loads((root / "region.json").read_text()) == cases.REGIONS[task]
    case = load_case(root)  # the algorithm's own validation: one image, binary mask on the same grid, known region
    assert (case.task, case.region) == (task, {"mri": "HN", "cbct": "AB"}[task])
    assert case.mask.mean() > 0.3


def test_test_folder_is_small() -> None:
    total = sum(p.stat().st_size for p in TEST.rglob("*") if p.is_file())
    assert total <= TEST_BUDGET_BYTES, f"test/ holds {total} bytes"
    with_samples = total + sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file())
    assert with_samples <= SAMPLES_AND_TEST_BUDGET_BYTES, f"samples/ + test/ hold {with_samples} bytes"


def test_cases_are_what_the_script_writes(cases: ModuleType, tmp_path: Path) -> None:
    """test/ is reproducible from samples/ with scripts/make_test_cases.py (same voxels, geometry and names)."""
    cases.make_cases(SAMPLES, tmp_path)
    for task in TASKS:
        for sub in (f"images/{task}", "images/body"):
            committed, fresh = _images(TEST / task / "input" / sub), _images(tmp_path / task / "input" / sub)
            assert [p.name for p in committed] == [p.name for p in fresh]
            a, b = sitk.ReadImage(str(committed[0])), sitk.ReadImage(str(fresh[0]))
            assert a.GetSize() == b.GetSize() and a.GetPixelID() == b.GetPixelID()
            assert a.GetSpacing() == b.GetSpacing() and a.GetOrigin() == b.GetOrigin()
            assert a.GetDirection() == b.GetDirection()
            np.testing.assert_array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))
        region = "input/region.json"
        assert (TEST / task / region).read_text() == (tmp_path / task / region).read_text()


def test_mri_case_is_the_porcine_sample_cropped(cases: ModuleType) -> None:
    root = TEST / "mri" / "input"
    mr = sitk.ReadImage(str(_images(root / "images" / "mri")[0]))
    source = sitk.ReadImage(str(SAMPLES / "porcine" / "mr.mha"))
    z0, z1 = cases.MRI_Z
    np.testing.assert_array_equal(sitk.GetArrayFromImage(mr), sitk.GetArrayFromImage(source)[z0:z1])
    assert mr.GetOrigin() == source.TransformIndexToPhysicalPoint((0, 0, z0))
    assert mr.GetSpacing() == source.GetSpacing()


def test_cbct_case_is_the_real_held_out_slab(cases: ModuleType) -> None:
    """test/cbct is the REAL CBCT of samples/pancreas_cbct, slices CBCT_Z: -1000 outside its circular FOV, the mask
    inside it, region Abdomen, and the same patient's CT lines up with it (same anatomy, CBCT shading and offset)."""
    root = TEST / "cbct" / "input"
    cbct_image = sitk.ReadImage(str(_images(root / "images" / "cbct")[0]))
    cbct = sitk.GetArrayFromImage(cbct_image)
    body = sitk.GetArrayFromImage(sitk.ReadImage(str(_images(root / "images" / "body")[0]))) > 0
    z0, z1 = cases.CBCT_Z
    source = sitk.ReadImage(str(SAMPLES / "pancreas_cbct" / "cbct.mha"))
    np.testing.assert_array_equal(cbct, sitk.GetArrayFromImage(source)[z0:z1])
    assert cbct.dtype == np.int16 and cbct_image.GetOrigin() == source.TransformIndexToPhysicalPoint((0, 0, z0))
    assert json.loads((root / "region.json").read_text()) == "Abdomen"
    fov = cbct_fov(cbct)  # re-estimated on the crop: may differ from the source's FOV by a voxel at the rim
    assert 0.5 < fov.mean() < 0.9 and body[~fov].sum() < 0.005 * body.sum() and np.all(cbct[~fov] == -1000)
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(SAMPLES / "pancreas_cbct" / "ct.mha")))[z0:z1].astype(np.float64)
    assert np.all(ct[~fov] == -1000)  # as the release: CT set to -1000 outside the CBCT's FOV
    corr = np.corrcoef(ct[body], cbct[body])[0, 1]
    assert corr > 0.3, corr  # same anatomy (0.39), under heavy real shading, contrast-enhanced CT and bowel motion
    assert np.median(cbct[body] - ct[body]) < -100  # CBCT numbers are not HU: this scanner reads ~200 low in tissue


@pytest.mark.parametrize("task", TASKS)
def test_process_on_test_case_passes_the_container_checks(task: str, outputs: dict[str, Path],
                                                          checker: ModuleType) -> None:
    """The checks of .ci/container.sh, including the stored reference summary, on an in-process CPU run."""
    problems = checker.check(TEST / task / "input", outputs[task], TEST / task / "expected_output.json")
    assert problems == []


@pytest.mark.parametrize("task", TASKS)
def test_checker_catches_broken_outputs(task: str, outputs: dict[str, Path], checker: ModuleType,
                                        tmp_path: Path) -> None:
    inp, expected = TEST / task / "input", TEST / task / "expected_output.json"
    good = outputs[task] / "images" / "synthetic-ct"
    (name,) = [p.name for p in good.iterdir()]

    def broken(edit) -> list[str]:
        out = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
        shutil.copytree(outputs[task], out)
        path = out / "images" / "synthetic-ct" / name
        image = sitk.ReadImage(str(path))
        edited = edit(image, path)
        if edited is not None:
            sitk.WriteImage(edited, str(path))
        return checker.check(inp, out, expected)

    body = sitk.GetArrayFromImage(sitk.ReadImage(str(_images(inp / "images" / "body")[0]))) > 0

    def edit_hu(change):
        def edit(image: sitk.Image, _path: Path) -> sitk.Image:
            hu = sitk.GetArrayFromImage(image)
            change(hu)
            out = sitk.GetImageFromArray(hu)
            out.CopyInformation(image)
            return out
        return edit

    def one_voxel(value: float, region: np.ndarray):
        index = tuple(np.argwhere(region)[0])

        def change(hu: np.ndarray) -> None:
            hu[index] = value
        return edit_hu(change)

    def offset_body(hu: np.ndarray) -> None:
        hu[body] += 5.0

    def shift_origin(image: sitk.Image, _path: Path) -> sitk.Image:
        image.SetOrigin(tuple(o + 0.5 for o in image.GetOrigin()))
        return image

    def extra_file(_image: sitk.Image, path: Path) -> None:
        (path.parent / ".tmp-leftover.mha").write_bytes(b"")

    assert broken(edit_hu(lambda hu: None)) == []  # the harness itself changes nothing
    assert any("outside the body mask" in p for p in broken(one_voxel(0.0, ~body)))
    assert any("HU range" in p for p in broken(one_voxel(4000.0, body)))
    assert any("origin" in p for p in broken(shift_origin))
    assert any("reference" in p for p in broken(edit_hu(offset_body)))
    assert any("expected exactly" in p for p in broken(extra_file))
    assert any("voxel type" in p for p in broken(lambda image, _p: sitk.Cast(image, sitk.sitkFloat64)))
