"""The weights this repository ships: every (task, region) of resources/models.json routes to a demo model that loads,
says what it is and fits the size budget; and each demo model beats simple baselines on its held-out sample case."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from testutils import REPO, SAMPLES, load_script

from synthct.inference.predictor import InferenceOptions, SyntheticCTPredictor
from synthct.metrics import image_metrics
from synthct.network.checkpoint import load_model_folder

ROUTING = json.loads((REPO / "resources" / "models.json").read_text())
#: Size limit of one bundled weights file (the demo-weights issue).
MAX_WEIGHTS_BYTES = 10 * 1024 * 1024


def _model(task: str) -> Path:
    """The model folder serving ``task`` (the demo models serve every region of their task)."""
    return REPO / ROUTING["models"][task]["HN"]["model"]


@pytest.mark.parametrize("task", ["mri", "cbct"])
def test_every_region_is_routed_to_a_loadable_demo_model(task: str) -> None:
    for region in ("HN", "TH", "AB"):
        entry = ROUTING["models"][task][region]
        folder = REPO / entry["model"]
        manifest, nets = load_model_folder(folder)
        assert manifest.task == task and len(nets) == len(manifest.folds)
        # trained on this region, or the routing says that this model serves it anyway
        assert region in manifest.regions or "serves HN, TH and AB" in entry["note"], (region, manifest.regions)
        assert "NOT a SynthRAD2025 model" in manifest.description, manifest.description
        assert "not a SynthRAD2025 model" in entry["note"]
        for weights in folder.glob("fold_*/*.safetensors"):
            assert weights.stat().st_size <= MAX_WEIGHTS_BYTES, weights


def _linear_map(task: str) -> tuple[float, float]:
    """(a, b) of the global linear map HU = a·x + b fitted on the demo model's training data (weights/DEMO_RESULTS)."""
    rows = json.loads((REPO / "weights" / "DEMO_RESULTS.json").read_text())["results"][task]
    (row,) = (r for name, r in rows.items() if name.startswith("global linear map"))
    return row["a"], row["b"]


def _scores(task: str, image: sitk.Image, ct: sitk.Image, mask: sitk.Image) -> dict[str, dict[str, float]]:
    """MAE/PSNR/MS-SSIM in the body of the bundled model, the identity, the demo's global linear map (fitted on the
    model's training data, as in weights/DEMO_RESULTS.md) and the oracle linear map fitted on this very case."""
    x, y, m = (sitk.GetArrayFromImage(im) for im in (image, ct, mask))
    body = m > 0
    spacing = tuple(reversed(image.GetSpacing()))
    predictor = SyntheticCTPredictor(_model(task), InferenceOptions(device="cpu", progress=False))
    sct = predictor.predict(x, m, spacing)
    norm = predictor.manifest.input_normalization.apply(x, body)
    a, b = _linear_map(task)
    oa, ob = np.polyfit(norm[body].astype(np.float64), y[body].astype(np.float64), 1)
    linear = np.where(body, np.clip(a * norm + b, -1024, 3071), -1000.0)
    oracle = np.where(body, np.clip(oa * norm + ob, -1024, 3071), -1000.0)
    identity = np.where(body, np.clip(x.astype(np.float32), -1024, 3071), -1000.0)
    return {name: image_metrics(y, pred, mask=body) for name, pred in
            (("model", sct), ("identity", identity), ("linear", linear), ("oracle linear", oracle))}


def _test_image(task: str, kind: str) -> sitk.Image:
    """The one image of test/<task>/input/images/<kind>/."""
    (path,) = (REPO / "test" / task / "input" / "images" / kind).glob("*.mha")
    return sitk.ReadImage(str(path))


def _beats(scores: dict[str, dict[str, float]], baselines: tuple[str, ...]) -> None:
    for metric, better in (("mae", np.less), ("psnr", np.greater), ("ms_ssim", np.greater)):
        for baseline in baselines:
            assert better(scores["model"][metric], scores[baseline][metric]), (metric, baseline, scores)


def test_cbct_demo_model_beats_all_baselines_on_the_real_held_out_slab() -> None:
    """test/cbct: a REAL CBCT (samples/pancreas_cbct, slices the Task 2 demo model never trained on) against the same
    patient's real planning CT. The bar of the real-CBCT issue: the model beats the identity, the training-data linear
    map and the oracle linear map fitted on this slab itself, on MAE, PSNR and MS-SSIM."""
    cases = load_script("make_test_cases")
    z0, z1 = cases.CBCT_Z
    image, mask = _test_image("cbct", "cbct"), _test_image("cbct", "body")
    ct = sitk.ReadImage(str(SAMPLES / "pancreas_cbct" / "ct.mha"))[:, :, z0:z1]
    assert ct.GetSize() == image.GetSize() and ct.GetOrigin() == image.GetOrigin()
    _beats(_scores("cbct", image, ct, mask), ("identity", "linear", "oracle linear"))


def test_mri_demo_model_beats_the_linear_map_on_the_held_out_slab() -> None:
    """test/mri: porcine slices held out from the demo model's training (identity is meaningless for MR)."""
    cases = load_script("make_test_cases")
    z0, z1 = cases.MRI_Z
    image, mask = cases.mri_case(SAMPLES)
    ct = sitk.ReadImage(str(SAMPLES / "porcine" / "ct.mha"))[:, :, z0:z1]
    _beats(_scores("mri", image, ct, mask), ("linear",))
