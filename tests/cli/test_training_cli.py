"""The training subcommands' argument handling and error messages (the full run is in tests/training)."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthct.cli.main import build_parser, main

ENV = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


@pytest.fixture
def no_nnunet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:  # set first, so that monkeypatch restores whatever the commands export
        monkeypatch.setenv(name, "unset")
        monkeypatch.delenv(name)


def test_training_commands_are_registered_with_paper_defaults() -> None:
    parser = build_parser()
    args = parser.parse_args(["train", "511", "0"])
    assert (args.plans, args.configuration, args.trainer, args.device) == (
        "synthctResUNetPlans", "3d_fullres", "l1", "auto")
    assert args.epochs is None and args.augmentation is None and not args.continue_training
    args = parser.parse_args(["convert", "/data", "/raw", "--task", "2", "--region", "all"])
    assert (args.task, args.region, args.id_base) == (2, "all", 500)
    args = parser.parse_args(["plan", "511"])
    assert (args.arch, args.gpu_memory_gb, args.patch_size) == ("both", 8.0, None)
    with pytest.raises(SystemExit):
        parser.parse_args(["convert", "/data", "/raw", "--task", "3"])


def test_missing_nnunet_folders_name_the_option_and_variable(no_nnunet_env, capsys) -> None:
    assert main(["train", "511", "0"]) == 1
    err = capsys.readouterr().err
    assert "--preprocessed or $nnUNet_preprocessed" in err and "--results or $nnUNet_results" in err
    assert main(["plan", "511"]) == 1
    assert "--raw or $nnUNet_raw" in capsys.readouterr().err


def test_bad_inputs_fail_with_one_line(no_nnunet_env, tmp_path: Path, capsys) -> None:
    assert main(["convert", str(tmp_path / "nowhere"), str(tmp_path / "raw"), "--task", "1"]) == 1
    assert "no Task1 folder" in capsys.readouterr().err
    (tmp_path / "raw").mkdir()
    (tmp_path / "pre").mkdir()
    folders = ["--raw", str(tmp_path / "raw"), "--preprocessed", str(tmp_path / "pre")]
    assert main(["preprocess", "Dataset511_X", *folders]) == 1
    assert "plans file not found" in capsys.readouterr().err
    assert main(["train", "511", "0", "--mirror-lr", "--preprocessed", str(tmp_path / "pre"), "--results",
                 str(tmp_path / "res")]) == 1
    assert "mirror_lr needs augmentation 'mild'" in capsys.readouterr().err
