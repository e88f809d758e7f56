"""Per-case time budget: the drop order (TTA, then folds in fold order, keeping one), the log, and a valid output."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from torch import nn

from synthct.inference.budget import TimeBudget, budget_seconds, plan_ensemble, process_start
from synthct.inference.predictor import InferenceOptions, SyntheticCTPredictor
from synthct.inference.sliding_window import SlidingWindowSettings, sliding_window_predict

FOLDS = ["0", "1", "2", "3", "4"]


# --- the projection and the drop order (pure) ----------------------------------------------------------------------

def test_nothing_is_dropped_when_the_projection_fits() -> None:
    plan = plan_ensemble(100.0, elapsed_s=10.0, member_s=0.1, batches_left=10, fold_names=FOLDS, n_flips=8,
                         finishing_s=5.0)
    assert plan.folds == (0, 1, 2, 3, 4) and plan.tta and plan.fits and plan.dropped == ()
    assert plan.projected_s == pytest.approx(10 + 10 * 5 * 8 * 0.1 + 5)


def test_tta_goes_first_and_alone_when_that_suffices() -> None:
    # full: 10 + 10*5*8*0.1 + 5 = 55 > 40; without TTA: 10 + 10*5*0.1 + 5 = 20 <= 40
    plan = plan_ensemble(40.0, 10.0, 0.1, 10, FOLDS, 8, 5.0)
    assert plan.folds == (0, 1, 2, 3, 4) and not plan.tta and plan.fits
    assert plan.dropped == ("mirroring TTA (8 flips -> 1)",)
    assert plan.projected_s == pytest.approx(20.0)


def test_then_folds_in_fold_order_as_few_as_needed() -> None:
    # without TTA: 10 + 10*k*1.0 + 5 <= 40  ->  k = 2: folds 0, 1, 2 dropped, 3 and 4 kept
    plan = plan_ensemble(40.0, 10.0, 1.0, 10, FOLDS, 8, 5.0)
    assert not plan.tta and plan.folds == (3, 4) and plan.fits
    assert plan.dropped == ("mirroring TTA (8 flips -> 1)", "folds 0, 1, 2 (kept 3, 4)")
    assert plan.projected_s == pytest.approx(35.0)


def test_folds_are_dropped_without_tta_to_drop() -> None:
    plan = plan_ensemble(40.0, 10.0, 1.0, 10, FOLDS, 1, 5.0)
    assert plan.folds == (3, 4) and plan.dropped == ("folds 0, 1, 2 (kept 3, 4)",)


def test_at_least_one_fold_is_kept_and_the_overrun_is_flagged() -> None:
    plan = plan_ensemble(1.0, 10.0, 1.0, 10, FOLDS, 8, 5.0)
    assert plan.folds == (4,) and not plan.tta and not plan.fits
    assert plan.projected_s == pytest.approx(25.0)
    single = plan_ensemble(1.0, 10.0, 1.0, 10, ["all"], 1, 5.0)
    assert single.folds == (0,) and single.dropped == () and not single.fits


def test_budget_sources_and_their_order() -> None:
    env = {"SYNTHCT_TIME_BUDGET": "900"}
    assert budget_seconds(60, 300, env) == 60
    assert budget_seconds(None, 300, env) == 300
    assert budget_seconds(None, None, env) == 900
    assert budget_seconds(None, None, {}) is None
    assert budget_seconds(0, 300, env) is None  # 0 switches it off
    with pytest.raises(ValueError, match="SYNTHCT_TIME_BUDGET must be a number of seconds, got 'soon'"):
        budget_seconds(None, None, {"SYNTHCT_TIME_BUDGET": "soon"})
    with pytest.raises(ValueError, match=">= 0"):
        budget_seconds(-5, None, {})
    with pytest.raises(ValueError, match="positive"):
        TimeBudget(0)


def test_decide_is_a_pure_decision_on_an_immutable_budget(caplog) -> None:
    """decide() projects from the member times (median, the warm-up forward left out) and returns the plan; the
    budget itself never changes, and the plan maps onto the ensemble it was taken for."""
    import dataclasses

    from synthct.inference.ensemble import Ensemble

    now = [110.0]
    budget = TimeBudget(40.0, started=100.0, fold_names=FOLDS, clock=lambda: now[0])
    ensemble = Ensemble((0, 1, 2, 3, 4), (1, 2))  # 4 flips
    times = [9.0] + [1.0] * 19  # the first (warm-up) forward is not the median
    with caplog.at_level(logging.WARNING, logger="synthct.inference.budget"):
        plan = budget.decide(ensemble, times, n_batches=11, first_batch_started=105.0)
    # without TTA: 10 + 10*k*1.0 + 5 <= 40 -> k = 2 folds kept
    assert plan.folds == (3, 4) and not plan.tta and plan.fits and plan.projected_s == pytest.approx(35.0)
    assert plan.apply(ensemble) == Ensemble((3, 4), ())
    assert "dropped mirroring TTA (4 flips -> 1); folds 0, 1, 2 (kept 3, 4)" in caplog.records[0].getMessage()
    with pytest.raises(dataclasses.FrozenInstanceError):
        budget.seconds = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="one time per ensemble member"):
        budget.decide(ensemble, [], 11, 105.0)


def test_process_start_is_before_now() -> None:
    import time

    now = time.monotonic()
    started = process_start()
    assert started <= now and now - started < 24 * 3600


# --- the sliding window with a budget (real forward passes on the CPU) ------------------------------------------------

def conv_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.InstanceNorm3d(4, affine=True), nn.LeakyReLU(),
                         nn.Conv3d(4, 1, 3, padding=1)).eval()


def _volume() -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(7).normal(size=(1, 20, 40, 36)).astype(np.float32))


SETTINGS = SlidingWindowSettings(tile_size=(8, 16, 16), step=0.5, tile_batch=2, mirror_axes=(1, 2), progress=False)


def test_tiny_budget_drops_tta_then_all_but_the_last_fold_and_equals_that_run(caplog) -> None:
    nets = [conv_net(s) for s in range(3)]
    image = _volume()
    budget = TimeBudget(1e-3, fold_names=["0", "1", "2"])
    with caplog.at_level(logging.INFO, logger="synthct.inference.budget"):
        out = sliding_window_predict(nets, image, SETTINGS, "cpu", budget=budget)
    reference = sliding_window_predict(nets[2:], image, SlidingWindowSettings(
        tile_size=(8, 16, 16), step=0.5, tile_batch=2, mirror_axes=(), progress=False), "cpu")
    np.testing.assert_array_equal(out.numpy(), reference.numpy())  # the whole volume by fold 2 alone, no TTA
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "dropped mirroring TTA (4 flips -> 1); folds 0, 1 (kept 2)" in message
    assert "over the budget: continuing" in message


def test_ample_budget_keeps_everything_and_equals_the_run_without_budget(caplog) -> None:
    nets = [conv_net(s) for s in range(2)]
    image = _volume()
    budget = TimeBudget(3600.0)
    with caplog.at_level(logging.INFO, logger="synthct.inference.budget"):
        out = sliding_window_predict(nets, image, SETTINGS, "cpu", budget=budget)
    reference = sliding_window_predict(nets, image, SETTINGS, "cpu")
    np.testing.assert_array_equal(out.numpy(), reference.numpy())
    assert any("keeping the whole ensemble" in r.getMessage() for r in caplog.records)


def test_tta_only_drop_rebuilds_the_first_batch_from_the_plain_forwards(monkeypatch) -> None:
    """A plan that drops only TTA: every tile (the first batch included) is the mean of the plain forwards."""
    import synthct.inference.budget as budget_module
    from synthct.inference.budget import EnsemblePlan

    monkeypatch.setattr(budget_module, "plan_ensemble", lambda *a, **k: EnsemblePlan((0, 1), False, 1.0, True,
                                                                                      ("mirroring TTA",)))
    nets = [conv_net(s) for s in range(2)]
    image = _volume()
    out = sliding_window_predict(nets, image, SETTINGS, "cpu", budget=TimeBudget(10.0))
    reference = sliding_window_predict(nets, image, SlidingWindowSettings(
        tile_size=(8, 16, 16), step=0.5, tile_batch=2, mirror_axes=(), progress=False), "cpu")
    np.testing.assert_array_equal(out.numpy(), reference.numpy())


def test_kept_folds_with_tta_match_the_reduced_ensemble(monkeypatch) -> None:
    import synthct.inference.budget as budget_module
    from synthct.inference.budget import EnsemblePlan

    monkeypatch.setattr(budget_module, "plan_ensemble", lambda *a, **k: EnsemblePlan((1, 2), True, 1.0, True,
                                                                                      ("folds 0 (kept 1, 2)",)))
    nets = [conv_net(s) for s in range(3)]
    image = _volume()
    out = sliding_window_predict(nets, image, SETTINGS, "cpu", budget=TimeBudget(10.0))
    reference = sliding_window_predict(nets[1:], image, SETTINGS, "cpu")
    np.testing.assert_allclose(out.numpy(), reference.numpy(), rtol=0, atol=1e-6)  # summation order differs


# --- a real model folder and process.py -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mirrored_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-fold random-weight model folder trained "with mirroring" along X (TTA allowed)."""
    from synthct.network.export import export_model
    from synthct.network.scaffold import random_training_results

    results = random_training_results(tmp_path_factory.mktemp("results") / "Dataset901", task="mri",
                                      features=(4, 8), patch_size=(16, 32, 32), spacing=(2.5, 1.0, 1.0),
                                      folds=(0, 1, 2), mirror_axes=(2,))
    return export_model(results, tmp_path_factory.mktemp("models") / "mri-3fold")


def test_predictor_with_tiny_budget_gives_a_valid_sct(mirrored_model: Path, porcine_images, caplog) -> None:
    image, mask = (sitk.GetArrayFromImage(x) for x in porcine_images)
    image, mask = image[:16, 40:120, 30:110], mask[:16, 40:120, 30:110]
    options = InferenceOptions(tta=True, device="cpu", progress=False)
    with caplog.at_level(logging.INFO):
        hu = SyntheticCTPredictor(mirrored_model, options).predict(image, mask, (2.5, 1.0, 1.0),
                                                                   budget=TimeBudget(1e-3))
    reference = SyntheticCTPredictor(mirrored_model, InferenceOptions(folds=(2,), device="cpu", progress=False)
                                     ).predict(image, mask, (2.5, 1.0, 1.0))
    np.testing.assert_array_equal(hu, reference)
    assert hu.dtype == np.float32 and hu.min() >= -1024 and hu.max() <= 3071
    assert np.all(hu[mask == 0] == -1000.0) and np.unique(hu[mask > 0]).size > 100
    assert any("dropped mirroring TTA (2 flips -> 1); folds 0, 1 (kept 2)" in r.getMessage() for r in caplog.records)


def test_process_py_time_budget_flag(mirrored_model: Path, tmp_path: Path, porcine_images, capsys) -> None:
    from testutils import files_under, make_gc_folder, write_models_json

    from synthct.challenge.algorithm import main

    app = tmp_path / "app"
    models = write_models_json(app, mirrored_model)
    text = models.read_text().replace('"folds": [0]', '"folds": [0, 1, 2], "tta": true, "time_budget": 3600')
    models.write_text(text)
    image, mask = porcine_images
    crop = (slice(30, 110), slice(40, 120), slice(0, 16))
    inp = make_gc_folder(tmp_path / "in", image[crop], mask[crop])
    assert main(["--input", str(inp), "--output", str(tmp_path / "out"), "--device", "cpu",
                 "--time-budget", "0.001"], app_root=app) == 0  # main() owns logging: its lines go to stderr
    (sct,) = files_under(tmp_path / "out")
    assert sitk.ReadImage(str(sct)).GetSize() == image[crop].GetSize()
    messages = capsys.readouterr().err.splitlines()
    assert any("time budget 0.001 s: projected" in m and "folds 0, 1 (kept 2)" in m for m in messages), messages
    assert any("time budget 0.001 s exceeded: the case took" in m for m in messages)
