"""Training-side rough edges of issue 20: Ctrl-C (item 5), and the messages of item 8 (fold-all validation label,
no hiddenlayer line, wrong dataset id, unset $nnUNet_raw, AFP extractor spacing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthct.cli.main import main
from synthct.training.trainer import SynthCTTrainerL1


def test_ctrl_c_in_train_is_one_line_and_exit_130(planned_dataset: str, nnunet_env: dict[str, Path],
                                                  monkeypatch: pytest.MonkeyPatch, capfd) -> None:
    def interrupted(self, batch):  # what SIGINT raises in the main thread, inside the first training step
        raise KeyboardInterrupt

    monkeypatch.setattr(SynthCTTrainerL1, "train_step", interrupted)
    code = main(["train", planned_dataset.split("_")[0].removeprefix("Dataset"), "2", "--plans", "synthctUNetPlans",
                 "--epochs", "1", "--iterations", "2", "--val-iterations", "1", "--device", "cpu", "--no-validation"])
    err = capfd.readouterr().err
    assert code == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.rstrip().splitlines()[-1].endswith("ERROR synthct: synthct train: stopped by SIGINT (exit 130)")


def test_fold_all_training_log_labels_validation_and_has_no_hiddenlayer_line(
        planned_dataset: str, nnunet_env: dict[str, Path]) -> None:
    """Every training log carried nnU-Net's "No module named 'hiddenlayer'"; a fold-all run validates on its own
    training cases, and its log and summary.json now say so."""
    import json

    assert main(["train", planned_dataset.split("_")[0].removeprefix("Dataset"), "all", "--plans",
                 "synthctUNetPlans", "--epochs", "1", "--iterations", "2", "--val-iterations", "1", "--device",
                 "cpu"]) == 0
    fold = nnunet_env["results"] / planned_dataset / "SynthCTTrainerL1__synthctUNetPlans__3d_fullres" / "fold_all"
    (log,) = fold.glob("training_log_*.txt")
    text = log.read_text()
    assert "hiddenlayer" not in text
    assert "val MAE (body, patches of TRAINING cases (fold all: nothing held out))" in text
    assert "Validation on TRAINING cases (fold all: nothing held out): mean MAE" in text
    summary = json.loads((fold / "validation" / "summary.json").read_text())
    assert summary["validated_on"] == "TRAINING cases (fold all: nothing held out)"


def test_wrong_dataset_id_lists_the_datasets_that_exist(planned_dataset: str, nnunet_env: dict[str, Path],
                                                        capfd) -> None:
    for argv in (["train", "999", "0", "--plans", "synthctUNetPlans", "--device", "cpu"],
                 ["preprocess", "999", "--plans", "synthctUNetPlans"], ["plan", "999"]):
        assert main(argv) == 1
        err = capfd.readouterr().err
        assert "ERROR synthct: no dataset '999' in the nnU-Net folders" in err, err
        assert f"existing: {planned_dataset}" in err or f", {planned_dataset}" in err, err


def test_convert_names_the_unset_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd) -> None:
    monkeypatch.delenv("nnUNet_raw", raising=False)
    assert main(["convert", str(tmp_path), "", "--task", "1"]) == 1  # "$nnUNet_raw" unset, quoted
    err = capfd.readouterr().err
    assert 'OUT is an empty string: is the variable in the command (e.g. "$nnUNet_raw") unset?' in err
    assert main(["convert", str(tmp_path), "--task", "1"]) == 1  # $nnUNet_raw unset, unquoted
    assert "no OUT given and $nnUNet_raw is unset" in capfd.readouterr().err


def test_afp_extractor_spacing_differing_from_the_plans_is_warned() -> None:
    from synthct.training.afp_trainer import spacing_warning

    assert spacing_warning((3.0, 1.0, 1.0), (3.0, 1.0, 1.0)) == ""
    warning = spacing_warning((2.5, 1.0, 1.0), [3.0, 1.0, 1.0])
    assert warning.startswith("the AFP extractor was trained at [2.5, 1.0, 1.0] mm (z, y, x), the plans' synthesis "
                              "spacing is [3.0, 1.0, 1.0] mm") and "--spacing 3 1 1" in warning
