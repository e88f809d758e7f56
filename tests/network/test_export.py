"""Model folder contract: export → load → identical outputs; stock checkpoints; strict, safe loading."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from synthct.network.build import build_network
from synthct.network.checkpoint import load_model_folder, load_state_dict
from synthct.network.export import export_model
from synthct.network.manifest import FORMAT_VERSION, ModelManifest, read_manifest


def reference_output(results: Path, fold: int, x: torch.Tensor) -> torch.Tensor:
    plans = json.loads((results / "plans.json").read_text())
    net = build_network(plans["configurations"]["3d_fullres"]["architecture"])
    ckpt = torch.load(results / f"fold_{fold}" / "checkpoint_final.pth", weights_only=True)
    net.load_state_dict(ckpt["network_weights"])
    with torch.no_grad():
        return net.eval()(x)


def test_export_load_gives_identical_outputs(tiny_results: Path, tiny_model: Path) -> None:
    manifest, nets = load_model_folder(tiny_model)
    assert manifest.folds == [0, 1] and manifest.task == "mri" and manifest.patch_size == (16, 64, 64)
    assert manifest.format_version == FORMAT_VERSION
    x = torch.randn(1, 1, 16, 64, 64)
    for fold, net in zip((0, 1), nets, strict=True):
        with torch.no_grad():
            assert torch.equal(net(x), reference_output(tiny_results, fold, x))
    stored = load_state_dict(tiny_model / "fold_0" / "model.safetensors")
    assert not any("optimizer" in k for k in stored)
    assert (tiny_model / "plans.json").is_file() and (tiny_model / "dataset.json").is_file()


def test_fp16_export_is_half_the_size_and_close(tiny_results: Path, tmp_path: Path) -> None:
    full = export_model(tiny_results, tmp_path / "fp32", folds=[0])
    half = export_model(tiny_results, tmp_path / "fp16", folds=[0], half=True)
    size = lambda p: (p / "fold_0" / "model.safetensors").stat().st_size  # noqa: E731
    assert size(half) < 0.6 * size(full)
    x = torch.randn(1, 1, 16, 64, 64)
    (_, [a]), (_, [b]) = load_model_folder(full), load_model_folder(half)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), rtol=0, atol=0.05)


def test_stock_checkpoint_is_accepted_as_weights(tiny_results: Path, tiny_model: Path, tmp_path: Path) -> None:
    model = tmp_path / "stock-weights"
    shutil.copytree(tiny_model, model)
    shutil.copyfile(tiny_results / "fold_0" / "checkpoint_final.pth", model / "fold_0" / "checkpoint_final.pth")
    manifest = json.loads((model / "synthct.json").read_text())
    manifest["weights"] = {"0": "fold_0/checkpoint_final.pth"}
    (model / "synthct.json").write_text(json.dumps(manifest))
    _, [net] = load_model_folder(model)
    x = torch.randn(1, 1, 16, 64, 64)
    with torch.no_grad():
        assert torch.equal(net(x), reference_output(tiny_results, 0, x))


def test_stock_checkpoint_with_numpy_logs_loads(tiny_results: Path, tmp_path: Path) -> None:
    """Stock nnUNetTrainer checkpoints carry numpy scalars in their logs; weights_only loading accepts them."""
    import numpy as np

    ckpt = torch.load(tiny_results / "fold_0" / "checkpoint_final.pth", weights_only=True)
    ckpt["logging"] = {"ema_fg_dice": [np.float64(0.5), np.float32(0.6)], "epoch_end_timestamps": np.array([1.0])}
    ckpt["_best_ema"] = np.float64(0.6)
    torch.save(ckpt, tmp_path / "checkpoint_final.pth")
    assert set(load_state_dict(tmp_path / "checkpoint_final.pth")) == set(ckpt["network_weights"])


class NotAWeight:
    """An arbitrary class: torch.load(weights_only=True) must refuse to unpickle it."""


def test_arbitrary_pickles_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": {}, "payload": NotAWeight()}, path)
    with pytest.raises(ValueError, match="weights_only=True"):
        load_state_dict(path)


def test_mismatching_weights_fail_loudly(tiny_model: Path, tmp_path: Path) -> None:
    model = tmp_path / "mismatch"
    shutil.copytree(tiny_model, model)
    manifest = json.loads((model / "synthct.json").read_text())
    manifest["architecture"]["arch_kwargs"]["features_per_stage"] = [4, 8, 32]
    (model / "synthct.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="do not match the network"):
        load_model_folder(model)


def test_export_refuses_to_overwrite_and_leaves_nothing_on_failure(tiny_results: Path, tiny_model: Path,
                                                                    tmp_path: Path) -> None:
    with pytest.raises(FileExistsError, match="exists"):
        export_model(tiny_results, tiny_model)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_results, broken)
    plans = json.loads((broken / "plans.json").read_text())
    del plans["synthct"]
    (broken / "plans.json").write_text(json.dumps(plans))
    with pytest.raises(ValueError, match="no 'synthct' block"):
        export_model(broken, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken"]
    with pytest.raises(FileNotFoundError, match="checkpoint_best"):
        export_model(tiny_results, tmp_path / "out", checkpoint="best")


def test_manifest_round_trip_and_validation(tiny_model: Path) -> None:
    manifest = read_manifest(tiny_model)
    assert ModelManifest.from_json(json.loads(json.dumps(manifest.to_json()))) == manifest
    data = manifest.to_json()
    with pytest.raises(ValueError, match="format_version 99"):
        ModelManifest.from_json({**data, "format_version": 99})
    with pytest.raises(ValueError, match="task must be one of"):
        ModelManifest.from_json({**data, "task": "pet"})
    with pytest.raises(ValueError, match="trained_with_mirroring is false"):
        ModelManifest.from_json({**data, "mirror_axes": [0]})
    with pytest.raises(ValueError, match="lacks the required key 'architecture'"):
        ModelManifest.from_json({k: v for k, v in data.items() if k != "architecture"})


def test_mirroring_recorded_from_checkpoint(tmp_path: Path) -> None:
    from synthct.network.scaffold import random_training_results

    results = random_training_results(tmp_path / "r", features=(4, 8), patch_size=(8, 16, 16), mirror_axes=(1, 2))
    manifest = read_manifest(export_model(results, tmp_path / "m"))
    assert manifest.trained_with_mirroring and manifest.mirror_axes == (1, 2)


def test_fold_all_is_exported_and_loaded(tiny_results: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    shutil.copytree(tiny_results, results)
    (results / "fold_0").rename(results / "fold_all")
    model = export_model(results, tmp_path / "model")
    manifest, [net] = load_model_folder(model, ["all"])
    assert manifest.folds == [1, "all"] and manifest.weights["all"] == "fold_all/model.safetensors"
    x = torch.randn(1, 1, 16, 64, 64)
    with torch.no_grad():
        assert torch.equal(net(x), reference_output(tiny_results, 0, x))
    with pytest.raises(ValueError, match="fold must be a non-negative integer or 'all', got 'best'"):
        load_model_folder(model, ["best"])


def test_licence_is_recorded_and_old_folders_without_it_load(tiny_results: Path, tiny_model: Path,
                                                              tmp_path: Path) -> None:
    from synthct.cli.main import main

    out = tmp_path / "licensed"
    assert main(["export", str(tiny_results), str(out), "--folds", "0", "--licence",
                 " CC BY-NC 4.0 (trained on SynthRAD2025 data) "]) == 0
    data = json.loads((out / "synthct.json").read_text())
    assert data["licence"] == "CC BY-NC 4.0 (trained on SynthRAD2025 data)"
    assert data["format_version"] == FORMAT_VERSION == 1  # optional key: no format bump
    assert read_manifest(out).licence == data["licence"]
    old = tmp_path / "old"
    shutil.copytree(tiny_model, old)
    legacy = json.loads((old / "synthct.json").read_text())
    legacy.pop("licence", None)  # a folder written before the key existed
    (old / "synthct.json").write_text(json.dumps(legacy))
    manifest, networks = load_model_folder(old)
    assert manifest.licence == "" and len(networks) == 2
