"""Plain helpers and constants shared by the tests (import as ``from testutils import ...``; never import conftest,
whose module name is ambiguous when several conftest.py files are collected)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import SimpleITK as sitk

from synthct.contracts import synthrad

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
#: ``synthct dose`` flags that keep a test plan to seconds (coarser than the defaults, same code path).
DOSE_FAST = ["--ct-resolution", "4", "--dose-grid", "6", "--max-iter", "30", "--beams", "5"]


def write_models_json(app_root: Path, model_dir: Path, tasks: tuple[str, ...] = ("mri",), step: float = 0.5) -> Path:
    """models.json under ``app_root/resources`` routing every region of ``tasks`` to ``model_dir``."""
    entry = {"model": os.path.relpath(model_dir, app_root), "step": step, "blend": "mean", "folds": [0]}
    path = app_root / "resources" / "models.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": 1, "models": {t: dict.fromkeys(synthrad.region_codes(), entry)
                                                          for t in tasks}}))
    return path


def make_gc_folder(root: Path, image: sitk.Image, mask: sitk.Image, task: str = "mri",
                   region: str = "Head and Neck", name: str = "case-uuid.mha") -> Path:
    """A grand-challenge input folder: images/<task>/<name>, images/body/<name>, region.json."""
    (root / "images" / task).mkdir(parents=True, exist_ok=True)
    (root / "images" / "body").mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(root / "images" / task / name))
    sitk.WriteImage(mask, str(root / "images" / "body" / name))
    (root / "region.json").write_text(json.dumps(region))
    return root


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def load_script(name: str) -> ModuleType:
    """Import scripts/<name>.py (scripts/ is no package; make_test_cases imports check_output as a sibling)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


#: (z0, y0, x0) corners of the (20, 64, 64) crops used as cases of a miniature release; all inside the porcine body.
CROPS = ((0, 30, 20), (10, 60, 40), (20, 90, 60), (5, 110, 30), (15, 40, 70), (8, 75, 50))
CROP_SHAPE = (20, 64, 64)


def crop(image: sitk.Image, corner: tuple[int, int, int]) -> sitk.Image:
    """The (20, 64, 64) (z, y, x) block of ``image`` at ``corner``."""
    z, y, x = corner
    dz, dy, dx = CROP_SHAPE
    return image[x:x + dx, y:y + dy, z:z + dz]


def write_case(folder: Path, mr: sitk.Image, ct: sitk.Image, mask: sitk.Image, input_name: str = "mr") -> Path:
    """A release case folder: ``<input_name>.mha`` (mr or cbct), ``ct.mha``, ``mask.mha``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in ((input_name, mr), ("ct", ct), ("mask", mask)):
        sitk.WriteImage(image, str(folder / f"{name}.mha"))
    return folder


def make_mini_synthrad(root: Path, n_cases: int = 5, bad_case: bool = True, region: str = "AB",
                       task: int = 1) -> Path:
    """``root/Task<task>/<region>/<task><region>X00k/{mr|cbct,ct,mask}.mha`` cut from the real porcine sample (Task 2
    uses the CT itself as the "CBCT"); optionally one case ``...X999`` whose CT is shifted by 2 mm (a geometry
    mismatch that conversion must reject) and an ``overview`` folder as in the release."""
    mr, ct, mask = (sitk.ReadImage(str(SAMPLES / "porcine" / f"{n}.mha")) for n in ("mr", "ct", "mask"))
    source, input_name = (mr, "mr") if task == 1 else (ct, "cbct")
    base = root / f"Task{task}" / region
    for k in range(n_cases):
        corner = CROPS[k]
        write_case(base / f"{task}{region}X{k:03d}", crop(source, corner), crop(ct, corner), crop(mask, corner),
                   input_name)
    if bad_case:
        corner = CROPS[-1]
        shifted = crop(ct, corner)
        shifted.SetOrigin(tuple(o + d for o, d in zip(shifted.GetOrigin(), (2.0, 0.0, 0.0), strict=True)))
        write_case(base / f"{task}{region}X999", crop(source, corner), shifted, crop(mask, corner), input_name)
    (base / "overview").mkdir(exist_ok=True)
    return root
