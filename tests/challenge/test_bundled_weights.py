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
    """MAE/PSNR/MS-SSIM in the body of the bundled model, the identity and the demo's global linear map (fitted on
    the model's training data, as in weights/DEMO_RESULTS.md)."""
    x, y, m = (sitk.GetArrayFromImage(im) for im in (image, ct, mask))
    body = m > 0
    spacing = tuple(reversed(image.GetSpacing()))
    predictor = SyntheticCTPredictor(_model(task), InferenceOptions(device="cpu", progress=False))
    sct = predictor.predict(x, m, spacing)
    norm = predictor.manifest.input_normalization.apply(x, body)
    a, b = _linear_map(task)
    linear = np.where(body, np.clip(a * norm + b, -1024, 3071), -1000.0)
    identity = np.where(body, np.clip(x.astype(np.float32), -1024, 3071), -1000.0)
    return {name: image_metrics(y, pred, mask=body) for name, pred in
            (("model", sct), ("identity", identity), ("linear", linear))}


def _test_image(task: str, kind: str) -> sitk.Image:
    """The one image of test/<task>/input/images/<kind>/."""
    (path,) = (REPO / "test" / task / "input" / "images" / kind).glob("*.mha")
    return sitk.ReadImage(str(path))


def _beats(scores: dict[str, dict[str, float]], baselines: tuple[str, ...]) -> None:
    for metric, better in (("mae", np.less), ("psnr", np.greater), ("ms_ssim", np.greater)):
        for baseline in baselines:
            assert better(scores["model"][metric], scores[baseline][metric]), (metric, baseline, scores)


def test_cbct_demo_model_beats_identity_and_linear_map_on_the_held_out_ct() -> None:
    """The held-out CBCT of weights/DEMO_RESULTS (OpenKBP pt_2 = samples/openkbp_hn, simulated whole by
    scripts/make_demo_weights.py), evaluated on a 24-slice slab around the neck, cropped in-plane to the body."""
    demo = load_script("make_demo_weights")
    cbct, ct, mask = demo.cbct_pair(SAMPLES / "openkbp_hn" / "ct.nii.gz")
    region = _test_image("cbct", "cbct")  # the region of test/cbct, on the same grid
    start = cbct.TransformPhysicalPointToIndex(region.GetOrigin())
    crop = tuple(slice(i, i + n) for i, n in zip(start, region.GetSize(), strict=True))  # x, y, z
    _beats(_scores("cbct", cbct[crop], ct[crop], mask[crop]), ("identity", "linear"))


def test_cbct_demo_model_beats_identity_on_the_container_test_case() -> None:
    """test/cbct: the same region of pt_2, but the CBCT simulated on the crop (other FOV centre and random fields)."""
    cases = load_script("make_test_cases")
    image, mask = _test_image("cbct", "cbct"), _test_image("cbct", "body")
    ct, _ = cases._crop_and_resample(sitk.ReadImage(str(SAMPLES / "openkbp_hn" / "ct.nii.gz")),
                                     sitk.ReadImage(str(SAMPLES / "openkbp_hn" / "mask.nii.gz")))
    assert ct.GetSize() == image.GetSize() and ct.GetOrigin() == image.GetOrigin()
    _beats(_scores("cbct", image, sitk.Clamp(ct, sitk.sitkFloat32, -1024, 3071), mask), ("identity",))


def test_mri_demo_model_beats_the_linear_map_on_the_held_out_slab() -> None:
    """test/mri: porcine slices held out from the demo model's training (identity is meaningless for MR)."""
    cases = load_script("make_test_cases")
    z0, z1 = cases.MRI_Z
    image, mask = cases.mri_case(SAMPLES)
    ct = sitk.ReadImage(str(SAMPLES / "porcine" / "ct.mha"))[:, :, z0:z1]
    _beats(_scores("mri", image, ct, mask), ("linear",))
