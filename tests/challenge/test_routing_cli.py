"""``synthct route`` / ``synthct export --route``: validated, atomic, backed-up changes of resources/models.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from testutils import write_models_json

from synthct.challenge.routing import resolve_route
from synthct.cli.main import main
from synthct.network.scaffold import random_training_results


@pytest.fixture(scope="module")
def hn_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_training_results(tmp_path_factory.mktemp("res") / "Dataset511", task="mri", regions=("HN",),
                                   features=(4, 8), patch_size=(16, 32, 32), spacing=(2.5, 1.0, 1.0), folds=(0,),
                                   description="trained for this test on HN")


def test_export_route_then_list_and_reroute(tmp_path: Path, tiny_model: Path, hn_results: Path, capsys) -> None:
    app = tmp_path / "app"
    models = write_models_json(app, tiny_model)  # every MRI region → the random-weight tiny model
    old = json.loads(models.read_text())
    old["models"]["mri"]["HN"] = {**old["models"]["mri"]["HN"], "blend": "gaussian", "tta": True, "note": "demo"}
    models.write_text(json.dumps(old))
    model = app / "weights" / "mri" / "HN"
    assert main(["export", str(hn_results), str(model), "--route", "--models", str(models)]) == 0
    assert resolve_route(models, "mri", "HN").model_dir == model.resolve()
    entry = json.loads(models.read_text())["models"]["mri"]["HN"]
    # a new model gets the paper's settings, not the old model's Gaussian blending, step 0.5 and TTA; it says so
    assert entry == {"model": "weights/mri/HN", "step": 0.3, "blend": "mean", "tta": False}
    assert ("mri/HN inference settings changed: step 0.5 → 0.3, blend 'gaussian' → 'mean', tta True → False, "
            "folds [0] → 'all' (from the paper's defaults)") in capsys.readouterr().err
    assert json.loads(models.with_name("models.json.bak").read_text())["models"]["mri"]["HN"]["model"] != entry["model"]
    capsys.readouterr()

    assert main(["route", "--list", "--models", str(models)]) == 1  # the cbct rows are not routed
    table = capsys.readouterr().out
    assert "mri   HN     trained weights/mri/HN" in table
    assert "mri   TH     DEMO" in table and "cbct  AB     NONE" in table

    before = models.read_text()
    assert main(["route", "mri", "TH", str(model), "--models", str(models)]) == 1  # trained for HN only
    assert "not 'TH' (--force routes it anyway)" in capsys.readouterr().err
    assert main(["route", "cbct", "TH", str(model), "--models", str(models)]) == 1
    assert "is a 'mri' model, cannot serve task 'cbct'" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["route", "mri", "AB", str(tmp_path / "empty"), "--models", str(models)]) == 1
    assert models.read_text() == before  # nothing written on a refused change
    assert not list(models.parent.glob(".*"))

    assert main(["route", "mri", "all", str(model), "--force", "--step", "0.3", "--folds", "0", "--note", "x",
                 "--models", str(models)]) == 0
    routed = json.loads(models.read_text())["models"]["mri"]
    assert {r: (e["model"], e["step"], e["folds"], e["note"]) for r, e in routed.items()} == dict.fromkeys(
        ("HN", "TH", "AB"), ("weights/mri/HN", 0.3, [0], "x"))
    assert models.stat().st_mode & 0o777 == 0o644


def test_route_gives_a_new_model_its_own_settings(tmp_path: Path, tiny_model: Path, hn_results: Path,
                                                   capsys) -> None:
    """synthct.json's extra.inference wins over the old entry; re-routing the same model keeps the entry's."""
    app = tmp_path / "app"
    models = write_models_json(app, tiny_model)
    model = app / "weights" / "mri" / "HN"
    assert main(["export", str(hn_results), str(model), "--models", str(models)]) == 0
    manifest = json.loads((model / "synthct.json").read_text())
    manifest["extra"]["inference"] = {"blend": "gaussian", "step": 0.5, "unknown": 1}
    (model / "synthct.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["route", "mri", "HN", str(model), "--models", str(models)]) == 0
    entry = json.loads(models.read_text())["models"]["mri"]["HN"]
    assert entry == {"model": "weights/mri/HN", "step": 0.5, "blend": "gaussian", "tta": False}
    assert "step 0.5 → 0.5" not in (err := capsys.readouterr().err)
    assert ("mri/HN inference settings changed: blend 'mean' → 'gaussian', folds [0] → 'all' "
            "(from the model's synthct.json)") in err
    assert main(["route", "mri", "HN", str(model), "--tta", "--models", str(models)]) == 0  # same model: kept
    entry = json.loads(models.read_text())["models"]["mri"]["HN"]
    assert entry == {"model": "weights/mri/HN", "step": 0.5, "blend": "gaussian", "tta": True}
    assert "tta False → True (from the existing entry (same model) and the command line)" in capsys.readouterr().err
