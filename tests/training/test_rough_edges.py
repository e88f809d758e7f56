"""The rough edges of the download → submission journey (issue 13, item 4), each with its fix."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest
import torch
from testutils import SAMPLES, make_mini_synthrad

from synthct.cli.main import main
from synthct.training.afp_trainer import state_mismatch
from synthct.training.config import AFP_FIELDS, AFPConfig, TrainConfig
from synthct.training.progress import progress_figure

TOTALSEG = SAMPLES / "totalsegmentator"


def _fake_preprocessed(pre: Path, name: str, n_cases: int) -> Path:
    base = pre / name
    base.mkdir(parents=True)
    (base / "synthctUNetPlans.json").write_text(json.dumps({"synthct": {}, "configurations": {}}))
    (base / "dataset.json").write_text(json.dumps({"numTraining": n_cases}))
    return base


def test_fold_needs_five_cases_checked_before_any_folder(tmp_path: Path, capsys) -> None:
    pre, res = tmp_path / "pre", tmp_path / "res"
    _fake_preprocessed(pre, "Dataset881_Two", 2)
    folders = ["--preprocessed", str(pre), "--results", str(res)]
    assert main(["train", "881", "0", "--plans", "synthctUNetPlans", "--device", "cpu", *folders]) == 1
    err = capsys.readouterr().err
    assert "needs at least 5 training cases; Dataset881_Two has 2" in err
    assert "train fold 'all' instead (synthct train 881 all" in err and "--region all" in err
    assert not res.exists()  # no fold_0/ holding only a log
    base = _fake_preprocessed(pre, "Dataset882_Split", 9)
    (base / "splits_final.json").write_text(json.dumps([{"train": [], "val": []}] * 3))
    assert main(["train", "882", "4", "--plans", "synthctUNetPlans", "--device", "cpu", *folders]) == 1
    assert "fold 4 does not exist: Dataset882_Split has folds 0-2" in capsys.readouterr().err


def _ct_and_labels(base: Path, cases: tuple[str, ...]) -> tuple[Path, Path]:
    (base / "ct").mkdir(parents=True)
    (base / "seg").mkdir()
    for case in cases:
        shutil.copy(TOTALSEG / "example_ct_sm.nii.gz", base / "ct" / f"{case}.nii.gz")
        shutil.copy(TOTALSEG / "example_seg.nii.gz", base / "seg" / f"{case}.nii.gz")
    return base / "ct", base / "seg"


def test_extractor_labels_never_merges_or_leaves_partial_folders(tmp_path: Path, capsys,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    raw = tmp_path / "raw"
    out = raw / "Dataset941_CompactAnatomy"
    ct, seg = _ct_and_labels(tmp_path / "first", ("s0001", "s0002"))
    assert main(["extractor", "labels", str(ct), str(out), "--labels", str(seg)]) == 0
    ct2, seg2 = _ct_and_labels(tmp_path / "second", ("s0009",))
    assert main(["extractor", "labels", str(ct2), str(out), "--labels", str(seg2)]) == 1
    assert "exists; pass --force to replace it" in capsys.readouterr().err
    assert main(["extractor", "labels", str(ct2), str(out), "--labels", str(seg2), "--force"]) == 0
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == ["s0009_0000.nii.gz"]  # replaced, not merged
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 1
    # a failed run (a CT without its label map) leaves neither the folder nor its new parents
    (seg2 / "s0009.nii.gz").unlink()
    target = tmp_path / "new" / "raw" / "Dataset942_CompactAnatomy"
    assert main(["extractor", "labels", str(ct2), str(target), "--labels", str(seg2)]) == 1
    assert not (tmp_path / "new").exists()

    # extractor train --fold 0 on 1 case: refused with the hint before planning writes anything
    for name, sub in (("nnUNet_raw", raw), ("nnUNet_preprocessed", tmp_path / "pre"),
                      ("nnUNet_results", tmp_path / "res")):
        monkeypatch.setenv(name, str(sub))
    (tmp_path / "pre").mkdir()
    assert main(["extractor", "train", str(out), "--spacing", "3", "3", "3", "--fold", "0"]) == 1
    assert "train fold 'all' instead (synthct extractor train ... --fold all" in capsys.readouterr().err
    assert list((tmp_path / "pre").iterdir()) == [] and not (tmp_path / "res").exists()


def test_failed_convert_leaves_no_folder_and_rerun_works(tmp_path: Path, capsys) -> None:
    release = make_mini_synthrad(tmp_path / "rel", n_cases=1, bad_case=True)
    good = release / "Task1" / "AB" / "1ABX000"
    hidden = tmp_path / "aside"
    good.rename(hidden)  # only the broken case is left
    raw = tmp_path / "raw"
    assert main(["convert", str(release), str(raw), "--task", "1", "--id-base", "800"]) == 1
    assert "no usable case" in capsys.readouterr().err
    assert not raw.exists() or list(raw.iterdir()) == []
    hidden.rename(good)
    assert main(["convert", str(release), str(raw), "--task", "1", "--id-base", "800"]) == 0  # no "exists"
    dataset = raw / "Dataset813_SynthRAD2025Task1AB"
    assert json.loads((dataset / "conversion_report.json").read_text())["dataset"] == dataset.name
    assert stat.S_IMODE(dataset.stat().st_mode) == 0o755


def test_export_modes_and_no_partial_folder(tiny_results: Path, tmp_path: Path) -> None:
    out = tmp_path / "weights" / "mri" / "HN"
    assert main(["export", str(tiny_results), str(out)]) == 0
    for path in [out, *out.rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) == (0o755 if path.is_dir() else 0o644), path
    broken = tmp_path / "results"
    shutil.copytree(tiny_results, broken)
    (broken / "fold_1" / "checkpoint_final.pth").write_bytes(b"not a checkpoint")
    target = tmp_path / "other" / "mri" / "HN"
    assert main(["export", str(broken), str(target)]) == 1
    assert not (tmp_path / "other").exists()


def test_version_and_plan_checks_before_the_fingerprint(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("synthct ")
    raw, pre = tmp_path / "raw", tmp_path / "pre"
    (raw / "Dataset883_MR").mkdir(parents=True)
    (raw / "Dataset883_MR" / "dataset.json").write_text(json.dumps({"synthct": {"task": "mri"}}))
    pre.mkdir()
    assert main(["plan", "883", "--input-skip", "--raw", str(raw), "--preprocessed", str(pre)]) == 1
    assert "this dataset is Task 1 (MR" in capsys.readouterr().err
    assert list(pre.iterdir()) == []  # refused before the fingerprint


def test_plans_message_names_the_plans_that_exist(tmp_path: Path, capsys) -> None:
    _fake_preprocessed(tmp_path / "pre", "Dataset884_X", 5)
    assert main(["preprocess", "884", "--preprocessed", str(tmp_path / "pre"), "--raw", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "this dataset was planned as synthctUNetPlans: pass --plans synthctUNetPlans" in err
    assert "synthct plan --arch resunet" in err


def test_short_init_mismatch_message() -> None:
    expected = {f"layer{i}.weight": torch.zeros(2, 2) for i in range(10)}
    got = {f"module{i}.weight": torch.zeros(2, 2) for i in range(10)} | {"layer0.weight": torch.zeros(3)}
    text = state_mismatch(expected, got)
    assert text.startswith("9 key(s) missing (layer1.weight, layer2.weight, layer3.weight, ... 6 more)")
    assert "10 key(s) unexpected" in text and "layer0.weight (3,) vs (2, 2)" in text
    assert len(text) < 400
    assert state_mismatch(expected, dict(expected)) == ""


def test_train_config_carries_no_afp_only_field() -> None:
    """The AFP settings live in AFPConfig; the stored JSON stays flat (the same keys as before the split)."""
    import dataclasses

    assert not {f.name for f in dataclasses.fields(TrainConfig)} & set(AFP_FIELDS)
    flat = {"epochs": 8, "afp_extractor": "/x", "afp_fold": "all", "afp_weight": 0.0, "init_checkpoint": "/y"}
    config = TrainConfig.from_json(flat)
    assert config.epochs == 8 and config.afp == AFPConfig("/x", afp_fold="all", afp_weight=0.0)
    assert config.init_checkpoint == "/y"  # also the L1 fine-tune's (synthct train --init), so not AFP-only
    assert {k: config.to_json()[k] for k in flat} == flat
    assert TrainConfig.from_json({"afp_weight": 1.0, "l1_weight": 5.0}).afp is None  # defaults of an old L1 config
    with pytest.raises(ValueError, match=r"AFP settings \['afp_weight'\] need afp_extractor"):
        TrainConfig.from_json({"afp_weight": 2.0})
    updated = TrainConfig().updated(afp_extractor="/x", afp_masked=True).updated(afp_weight=0.5)
    assert updated.afp == AFPConfig("/x", afp_masked=True, afp_weight=0.5)
    with pytest.raises(ValueError, match="afp_checkpoint must be 'final' or 'best', got 'last'"):
        AFPConfig("/x", afp_checkpoint="last")


def test_afp_fields_only_in_afp_runs_and_progress_labels() -> None:
    assert not any(k.startswith("afp_") or k in ("l1_weight", "init_checkpoint") for k in TrainConfig().to_json())
    afp = TrainConfig(afp=AFPConfig("/x"), init_checkpoint="/y")
    assert afp.to_json()["afp_weight"] == 1.0 and TrainConfig.from_json(afp.to_json()) == afp
    assert TrainConfig.from_json(TrainConfig(epochs=3).to_json()) == TrainConfig(epochs=3)
    log = {"train_losses": [1.0, 0.5], "val_losses": [1.1, 0.6], "mean_fg_dice": [-300.0, -200.0],
           "ema_fg_dice": [-300.0, -290.0], "dice_per_class_or_region": [[-300.0], [-200.0]], "lrs": [1e-2, 9e-3],
           "epoch_start_timestamps": [0.0, 10.0], "epoch_end_timestamps": [9.0, 19.0]}
    fig = progress_figure(log)
    labels = [ax.get_ylabel() for ax in fig.axes] + [t.get_text() for ax in fig.axes
                                                      for t in (ax.get_legend().get_texts() if ax.get_legend() else [])]
    assert "MAE in the body [HU]" in labels and not any("dice" in t.lower() for t in labels)
    assert list(fig.axes[-1].lines[0].get_ydata()) == [300.0, 200.0]  # the MAE, not −MAE
