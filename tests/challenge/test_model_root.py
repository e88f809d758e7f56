"""Where process.py finds its models: the platform's model tarball at /opt/ml/model, else the image, else one line."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from testutils import REPO, files_under, make_gc_folder, write_models_json

from synthct.challenge.algorithm import main
from synthct.challenge.errors import CaseError
from synthct.challenge.model_root import check_models, find_model_root, root_of


def _tarball_layout(model: Path, tiny_model: Path, top_level: bool) -> Path:
    """``model/`` as export.sh packs it: routing (top-level or in resources/) + weights/mri/<name>."""
    shutil.copytree(tiny_model, model / "weights" / "mri" / "tiny")
    entry = {"model": "weights/mri/tiny", "folds": [0], "step": 0.5}
    routing = {"version": 1, "models": {"mri": dict.fromkeys(("HN", "TH", "AB"), entry)}}
    path = model / "models.json" if top_level else model / "resources" / "models.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(routing))
    return model


def test_search_order_and_roots(tmp_path: Path, tiny_model: Path) -> None:
    app, platform = tmp_path / "app", tmp_path / "opt-ml-model"
    baked = write_models_json(app, tiny_model)
    found = find_model_root(app, platform)
    assert (found.models_json, found.root, found.source) == (baked, app.resolve(), "image")
    _tarball_layout(platform, tiny_model, top_level=False)
    found = find_model_root(app, platform)
    assert (found.models_json, found.root, found.source) == (platform / "resources" / "models.json",
                                                            platform.resolve(), "model tarball")
    (platform / "models.json").write_text((platform / "resources" / "models.json").read_text())
    assert find_model_root(app, platform).models_json == platform / "models.json"  # top level first
    explicit = find_model_root(app, platform, baked)
    assert (explicit.models_json, explicit.source) == (baked, "--models")
    assert root_of(tmp_path / "x" / "models.json") == (tmp_path / "x").resolve()


def test_nothing_found_is_one_clear_line(tmp_path: Path, caplog) -> None:
    platform = tmp_path / "opt-ml-model"
    platform.mkdir()
    (platform / "stray.bin").write_bytes(b"x")
    with caplog.at_level(logging.WARNING), pytest.raises(CaseError) as exc:
        find_model_root(tmp_path / "app", platform)
    text = str(exc.value)
    assert "\n" not in text and "no model routing file found" in text
    for looked in ("opt-ml-model/models.json", "opt-ml-model/resources/models.json", "app/resources/models.json"):
        assert looked in text
    assert any("holds files but no models.json" in r.getMessage() for r in caplog.records)


def test_check_models_loads_every_routed_folder(tmp_path: Path, tiny_model: Path) -> None:
    found = find_model_root(tmp_path / "app", _tarball_layout(tmp_path / "m", tiny_model, top_level=True))
    (line,) = check_models(found, ["mri"])
    assert line.endswith("1 fold(s), for mri/HN, mri/TH, mri/AB")
    with pytest.raises(CaseError, match="no model for task 'cbct'"):
        check_models(found, ["cbct"])


def test_process_py_runs_from_an_extracted_model_tarball(tmp_path: Path, tiny_model: Path, porcine_images) -> None:
    """The image without weights: the models come only from a tarball made like export.sh's, extracted elsewhere."""
    packed = _tarball_layout(tmp_path / "model", tiny_model, top_level=False)
    tarball = tmp_path / "model-task1.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:  # = tar -czf model-task1.tar.gz -C model .
        tar.add(packed, arcname=".")
    extracted = tmp_path / "opt" / "ml" / "model"
    extracted.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(extracted, filter="data")
    image, mask = porcine_images
    crop = (slice(20, 120), slice(30, 150), slice(0, 16))
    inp = make_gc_folder(tmp_path / "in", image[crop], mask[crop])
    app = tmp_path / "app-without-weights"
    app.mkdir()
    shutil.copy(REPO / "process.py", app / "process.py")
    env = {**os.environ, "SYNTHCT_PLATFORM_MODEL_DIR": str(extracted), "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, str(app / "process.py"), "--input", str(inp), "--output",
                           str(tmp_path / "out"), "--device", "cpu"], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"models: {extracted}/resources/models.json (model tarball" in proc.stderr
    assert [p.name for p in files_under(tmp_path / "out")] == ["case-uuid.mha"]
    check = subprocess.run([sys.executable, str(app / "process.py"), "--check-models"], capture_output=True,
                           text=True, env=env, timeout=600)
    assert check.returncode == 0 and "1 fold(s), for mri/HN, mri/TH, mri/AB" in check.stderr, check.stderr


def test_without_any_model_process_py_fails_with_one_line(tmp_path: Path, porcine_images,
                                                          monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("SYNTHCT_PLATFORM_MODEL_DIR", str(tmp_path / "absent"))
    image, mask = porcine_images
    inp = make_gc_folder(tmp_path / "in", image[:, :, :8], mask[:, :, :8])
    assert main(["--input", str(inp), "--output", str(tmp_path / "out"), "--device", "cpu"],
                app_root=tmp_path / "app") == 1
    (error,) = [ln for ln in capsys.readouterr().err.splitlines() if " ERROR " in ln]
    assert "no model routing file found" in error
    assert files_under(tmp_path / "out") == []
