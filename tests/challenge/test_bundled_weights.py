"""The weights this repository ships: every (task, region) of resources/models.json routes to a demo model that loads,
says what it is and fits the size budget; and each demo model beats simple baselines on its held-out sample case."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
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


def test_bundled_compact_extractor_loads_for_finetune_and_segments_bone() -> None:
    """weights/extractor/compact-demo: what `synthct finetune --extractor` takes (fold auto → all), fp16 on disk,
    float32 in memory, within the size budget, with its provenance; and it finds the porcine long bone (a CT it
    never saw) as one of the bone groups rather than as background."""
    from synthct.cli.finetune import _extractor_fold
    from synthct.contracts.compact_labels import COMPACT_GROUPS
    from synthct.losses.feature_extractor import load_feature_extractor

    folder = REPO / "weights" / "extractor" / "compact-demo"
    weights = folder / "fold_all" / "checkpoint_final.safetensors"
    assert weights.stat().st_size <= MAX_WEIGHTS_BYTES
    assert "DEMO" in (folder / "PROVENANCE.md").read_text()
    assert _extractor_fold(folder, "auto", "final") == "all"
    assert list(json.loads((folder / "dataset.json").read_text())["labels"]) == list(COMPACT_GROUPS)
    extractor = load_feature_extractor(folder, "all")
    assert all(p.dtype == torch.float32 for p in extractor.parameters())
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(SAMPLES / "porcine" / "ct.mha"))).astype(np.float32)
    z, y, x = np.argwhere(ct > 500).mean(0).astype(int)
    z0 = int(np.clip(z - 8, 0, ct.shape[0] - 16))
    patch = torch.from_numpy(ct[z0:z0 + 16, y - 48:y + 48, x - 48:x + 48])[None, None]
    with torch.no_grad():
        labels = extractor.network(extractor.normalize_hu(patch))[0].argmax(0).numpy()
    bone_groups = [COMPACT_GROUPS.index(g) for g in ("bones", "ribs", "vertebrae")]
    in_bone = labels[patch[0, 0].numpy() > 500]
    assert np.isin(in_bone, bone_groups).mean() > 0.5, np.bincount(in_bone, minlength=7)
