"""Ctrl-C in a training run: one ERROR line and exit 130, as process.py (issue 20, item 5)."""

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
