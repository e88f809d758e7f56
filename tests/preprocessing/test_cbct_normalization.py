"""Per-case CBCT normalisation (robust_zscore_mask, issue 22): round trip, drift invariance, the plans and the model
folder carry it, inference applies it, an unknown name is one clear error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from synthct.contracts.cbct_normalization import (
    CBCT_NORMALIZATIONS,
    PER_CASE_SCHEME,
    invert_robust_zscore,
    robust_stats,
    robust_zscore,
)
from synthct.contracts.normalization import INPUT_SCHEMES, InputNormalization

CLIP = (-1024.0, 1152.0)


def _real_cbct(samples: Path) -> tuple[np.ndarray, np.ndarray]:
    folder = samples / "pancreas_cbct"
    cbct = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "cbct.mha")))[14:30]
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "mask.mha")))[14:30] > 0
    return cbct, mask


def test_per_case_normalisation_round_trips(repo_root) -> None:
    cbct, body = _real_cbct(repo_root / "samples")
    z, median, scale = robust_zscore(cbct, body, CLIP)
    assert z.dtype == np.float32
    np.testing.assert_allclose(invert_robust_zscore(z, median, scale), np.clip(cbct, *CLIP), atol=1e-3)
    # median 0 and IQR 1.349 inside the body
    q25, q50, q75 = np.percentile(z[body], (25, 50, 75))
    assert abs(q50) < 1e-5 and abs((q75 - q25) - 1.3489795) < 1e-4
    assert (median, scale) == robust_stats(np.clip(cbct, *CLIP).astype(np.float64), body)
    np.testing.assert_array_equal(InputNormalization(PER_CASE_SCHEME, CLIP).apply(cbct, body), z)


def test_per_case_normalisation_cancels_a_global_offset_and_scale(repo_root) -> None:
    cbct, body = _real_cbct(repo_root / "samples")
    cbct = np.clip(cbct.astype(np.float64), -840, 960)  # drifted values stay inside the clip
    drifted = 1.1 * cbct - 80.0
    per_case = InputNormalization(PER_CASE_SCHEME, CLIP)
    np.testing.assert_allclose(per_case.apply(drifted, body), per_case.apply(cbct, body), atol=1e-4)
    dataset = InputNormalization("clip_zscore", CLIP, -233.9, 360.5)
    assert np.abs(dataset.apply(drifted, body) - dataset.apply(cbct, body)).max() > 0.1


def test_normalisation_json_round_trip_and_validation() -> None:
    norm = InputNormalization(PER_CASE_SCHEME, CLIP, -233.9, 360.5)
    assert InputNormalization.from_json(json.loads(json.dumps(norm.to_json()))) == norm
    assert InputNormalization.from_json({"scheme": PER_CASE_SCHEME, "clip": list(CLIP)}).mean is None
    with pytest.raises(ValueError, match="robust_zscore_mask needs an increasing clip range"):
        InputNormalization(PER_CASE_SCHEME)
    assert set(CBCT_NORMALIZATIONS.values()) <= set(INPUT_SCHEMES)


def test_unknown_normalisation_name_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match=r"scheme must be one of \('zscore_mask', 'clip_zscore', "
                                         r"'robust_zscore_mask'\), got 'percentile_match'"):
        InputNormalization("percentile_match", CLIP)


def test_plans_block_carries_the_per_case_option() -> None:
    from synthct.network.planning import input_skip_init, synthct_block

    stats = {"0": {"mean": -200.0, "std": 300.0, "percentile_00_5": -1000.0, "percentile_99_5": 1500.0},
             "1": {"mean": -150.0, "std": 400.0, "percentile_00_5": -1024.0, "percentile_99_5": 1800.0}}
    dataset = {"synthct": {"task": "cbct", "regions": ["AB"], "input_channels": [0], "target_channels": [1],
                           "hu_clip": [-1024.0, 3071.0]}}
    fingerprint = {"foreground_intensity_properties_per_channel": stats}
    default = synthct_block(dataset, fingerprint, "test")
    assert default["input_normalization"]["scheme"] == "clip_zscore"  # the paper's stays the default
    block = synthct_block(dataset, fingerprint, "test", "per-case")
    assert InputNormalization.from_json(block["input_normalization"]) == InputNormalization(
        PER_CASE_SCHEME, (-1000.0, 1500.0), -200.0, 300.0)
    assert input_skip_init(block) == input_skip_init(default) == [300.0 / 400.0, (-200.0 + 150.0) / 400.0]
    with pytest.raises(ValueError, match=r"cbct_normalization must be one of \['dataset', 'per-case'\], got "
                                         r"'histogram'"):
        synthct_block(dataset, fingerprint, "test", "histogram")


@pytest.fixture(scope="module")
def cbct_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two exported random-weight CBCT model folders, identical but for their input normalisation."""
    from synthct.network.export import export_model
    from synthct.network.scaffold import random_training_results

    out = {}
    for name, norm in (("dataset", InputNormalization("clip_zscore", CLIP, -233.9, 360.5)),
                       ("per-case", InputNormalization(PER_CASE_SCHEME, CLIP, -233.9, 360.5))):
        results = random_training_results(tmp_path_factory.mktemp("results") / name, task="cbct", regions=("AB",),
                                          features=(4, 8, 16), patch_size=(16, 64, 64), spacing=(3.0, 2.0, 2.0),
                                          input_normalization=norm, seed=5)
        out[name] = export_model(results, tmp_path_factory.mktemp("models") / name)
    return out


def test_model_folder_that_declares_per_case_is_read_and_applied(cbct_models, repo_root) -> None:
    from synthct.inference.predictor import InferenceOptions, SyntheticCTPredictor
    from synthct.network.manifest import read_manifest

    assert json.loads((cbct_models["per-case"] / "synthct.json").read_text())["input_normalization"]["scheme"] \
        == PER_CASE_SCHEME
    assert read_manifest(cbct_models["per-case"]).input_normalization.scheme == PER_CASE_SCHEME
    cbct, body = _real_cbct(repo_root / "samples")
    cbct = np.clip(cbct.astype(np.float32), -840, 960)[:, 70:166, 70:166]
    body = body[:, 70:166, 70:166]
    drifted = 1.1 * cbct - 80.0
    spacing = (3.0, 2.0, 2.0)
    outputs = {}
    for name, model in cbct_models.items():
        predictor = SyntheticCTPredictor(model, InferenceOptions(device="cpu", progress=False))
        assert predictor.manifest.input_normalization == read_manifest(model).input_normalization
        outputs[name] = [predictor.predict(image, body.astype(np.uint8), spacing) for image in (cbct, drifted)]
    # per-case: the drift cancels in the normalisation, so the prediction is the same; dataset z-score: it is not
    np.testing.assert_allclose(outputs["per-case"][0], outputs["per-case"][1], atol=0.05)
    assert np.abs(outputs["dataset"][0] - outputs["dataset"][1])[body].mean() > 1.0
    assert np.abs(outputs["per-case"][0] - outputs["dataset"][0])[body].mean() > 1.0


def test_model_folder_with_an_unknown_normalisation_is_one_clear_error(cbct_models, tmp_path: Path) -> None:
    from synthct.inference.predictor import InferenceOptions, SyntheticCTPredictor

    model = shutil.copytree(cbct_models["per-case"], tmp_path / "model")
    manifest = json.loads((model / "synthct.json").read_text())
    manifest["input_normalization"]["scheme"] = "percentile_match"
    (model / "synthct.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError) as info:
        SyntheticCTPredictor(model, InferenceOptions(device="cpu", progress=False))
    message = str(info.value)
    assert str(model / "synthct.json") in message and "'percentile_match'" in message
    assert "robust_zscore_mask" in message  # names the known schemes
    assert info.value.__cause__ is None and info.value.__suppress_context__  # one error, no chained traceback
