"""``synthct evaluate`` end to end on the real porcine sample, through ``synthct.cli.main.main``."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from synthct.cli import evaluate as evaluate_cli
from synthct.cli.main import build_parser, main

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture()
def case_dirs(tmp_path):
    ref = sitk.ReadImage(str(SAMPLES / "porcine" / "ct.mha"))
    ct = sitk.GetArrayFromImage(ref)
    for folder, name, array in (
        ("gt", "1ABA001.mha", ct),
        ("pred", "sct_1ABA001.mha", (ct - np.int16(40)).astype(np.int16)),
    ):
        (tmp_path / folder).mkdir()
        image = sitk.GetImageFromArray(array)
        image.CopyInformation(ref)
        sitk.WriteImage(image, str(tmp_path / folder / name))
    (tmp_path / "masks").mkdir()
    sitk.WriteImage(sitk.ReadImage(str(SAMPLES / "porcine" / "mask.mha")), str(tmp_path / "masks" / "1ABA001.mha"))
    return tmp_path


def test_parser_registers_evaluate():
    args = build_parser().parse_args(["evaluate", "--pred", "p", "--gt", "g", "--out", "o"])
    assert args.func is evaluate_cli._run
    assert (args.pred, args.masks, args.segmentation, args.missing_hd95) == (Path("p"), None, "auto", "exclude")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--pred", "p", "--gt", "g", "--out", "o", "--segmentation", "dice"])


def test_evaluate_command(case_dirs):
    out = case_dirs / "out"
    argv = ["evaluate", "--pred", str(case_dirs / "pred"), "--gt", str(case_dirs / "gt"), "--out", str(out)]
    argv += ["--masks", str(case_dirs / "masks"), "--totalseg-executable", "no-such-tool", "--no-progress"]
    assert main(argv) == 0
    payload = json.loads((out / "metrics.json").read_text())
    (row,) = payload["results"]
    assert (row["case_id"], row["region"], row["mae"]) == ("1ABA001", "AB", 40.0)
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(case_dirs / "gt" / "1ABA001.mha")))
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(case_dirs / "masks" / "1ABA001.mha"))) > 0
    err = np.minimum(40.0, ct[mask] + 1024.0)  # -1024 HU air is clipped back to -1024 for PSNR
    assert row["psnr"] == pytest.approx(10 * math.log10(4095.0**2 / np.mean(err**2)), abs=1e-10)
    assert payload["aggregates"]["mae"] == {
        "mean": 40.0,
        "std": 0.0,
        "min": 40.0,
        "max": 40.0,
        "25pc": 40.0,
        "50pc": 40.0,
        "75pc": 40.0,
        "count": 1,
    }
    assert payload["segmentation_method"] == "bone_threshold"
    assert (out / "index.html").is_file() and (out / "qa" / "1ABA001.png").is_file()


def test_evaluate_command_reports_errors(case_dirs, capfd):
    (case_dirs / "gt" / "1HNA002.mha").write_bytes((case_dirs / "gt" / "1ABA001.mha").read_bytes())
    argv = ["evaluate", "--pred", str(case_dirs / "pred"), "--gt", str(case_dirs / "gt")]
    argv += ["--out", str(case_dirs / "out"), "--no-report", "--no-progress"]
    assert main(argv) == 1  # main() logs the error (its own stderr handler) instead of raising
    assert re.search(r"ERROR synthct: no prediction in .*pred for case\(s\): 1HNA002", capfd.readouterr().err)
    assert not (case_dirs / "out" / "metrics.json").exists()


def _argv(case_dirs: Path, *extra: str) -> list[str]:
    return ["evaluate", "--pred", str(case_dirs / "pred"), "--gt", str(case_dirs / "gt"), "--out",
            str(case_dirs / "out"), "--masks", str(case_dirs / "masks"), "--segmentation", "bone", "--no-progress",
            *extra]


def test_skip_missing_scores_the_others_and_lists_the_skipped(case_dirs, capfd):
    """A case without a prediction (e.g. skipped by predict as broken) is skipped by id with --skip-missing."""
    (case_dirs / "gt" / "1HNA002.mha").write_bytes((case_dirs / "gt" / "1ABA001.mha").read_bytes())
    assert main(_argv(case_dirs)) == 1
    assert "(--skip-missing scores the others)" in capfd.readouterr().err
    assert main(_argv(case_dirs, "--skip-missing")) == 0  # the mask of 1HNA002 is not needed either
    payload = json.loads((case_dirs / "out" / "metrics.json").read_text())
    assert [r["case_id"] for r in payload["results"]] == ["1ABA001"] and payload["skipped_cases"] == ["1HNA002"]
    assert "skipped (--skip-missing), not scored: 1HNA002" in (case_dirs / "out" / "index.html").read_text()
    assert "WARNING synthct.cli.evaluate: skipped (no prediction): 1HNA002" in capfd.readouterr().err


def test_mismatched_folders_report_missing_and_extra_predictions(case_dirs, capfd):
    (case_dirs / "gt" / "1HNA002.mha").write_bytes((case_dirs / "gt" / "1ABA001.mha").read_bytes())
    (case_dirs / "pred" / "sct_1THA009.mha").write_bytes((case_dirs / "pred" / "sct_1ABA001.mha").read_bytes())
    assert main(_argv(case_dirs, "--skip-missing")) == 1  # an extra prediction is an error even then
    err = capfd.readouterr().err
    assert "without a ground-truth CT" in err and "sct_1THA009.mha" in err and "1HNA002" not in err
    assert main(_argv(case_dirs)) == 1
    err = capfd.readouterr().err
    assert re.search(r"no prediction in .*pred for case\(s\): 1HNA002 .*; prediction file\(s\) in .*pred without a "
                     r"ground-truth CT in .*gt: sct_1THA009.mha", err), err


def test_rerun_replaces_out_and_an_interrupt_leaves_the_old_one(case_dirs, monkeypatch, capfd):
    """--out is staged and renamed: no stale QA image survives a rerun; Ctrl-C leaves the earlier result intact;
    a folder that is not an earlier evaluation is refused."""
    out = case_dirs / "out"
    assert main(_argv(case_dirs)) == 0
    (out / "qa" / "stale_case.png").write_bytes(b"old")
    before = (out / "metrics.json").read_text()
    from synthct.metrics import evaluate as evaluate_lib

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate_lib, "_write_outputs", interrupted)
    assert main(_argv(case_dirs)) == 130
    err = capfd.readouterr().err
    assert "ERROR synthct: synthct evaluate: stopped by SIGINT (exit 130)" in err and "Traceback" not in err
    assert (out / "metrics.json").read_text() == before  # the old result, whole
    assert sorted(p.name for p in case_dirs.iterdir()) == ["gt", "masks", "out", "pred"]  # no partial sibling
    monkeypatch.undo()
    assert main(_argv(case_dirs)) == 0
    assert sorted(p.name for p in (out / "qa").iterdir()) == ["1ABA001.png", "mae_by_region.png"]
    (case_dirs / "notes").mkdir()
    (case_dirs / "notes" / "mine.txt").write_text("keep")
    assert main([*_argv(case_dirs)[:5], "--out", str(case_dirs / "notes"), *_argv(case_dirs)[7:]]) == 1
    assert "non-empty folder without metrics.json" in capfd.readouterr().err
    assert (case_dirs / "notes" / "mine.txt").read_text() == "keep"
