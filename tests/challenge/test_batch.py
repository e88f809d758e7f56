"""``synthct predict -i DIR -o OUT``: case discovery in the three layouts, one code path with process.py, resumable,
a bad case reported by id, and sharding over 2 gloo processes under torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from testutils import REPO, crop, make_gc_folder, make_mini_synthrad, write_models_json

from synthct.challenge.algorithm import main as process_main
from synthct.challenge.batch import shard
from synthct.challenge.batch_inputs import discover_cases
from synthct.cli.main import main

GOOD = ("1ABX000", "1ABX001", "1ABX002")


def _release(root: Path) -> Path:
    """Task1/AB with three good cases and 1ABX999 whose mask holds three values (a bad case; 0/c masks are fine)."""
    make_mini_synthrad(root, n_cases=3, bad_case=True)
    bad = root / "Task1" / "AB" / "1ABX999" / "mask.mha"
    mask = sitk.ReadImage(str(bad))
    values = sitk.GetArrayFromImage(mask)
    values.flat[int(np.flatnonzero(values)[0])] = 2
    three = sitk.GetImageFromArray(values)
    three.CopyInformation(mask)
    sitk.WriteImage(three, str(bad))
    return root


@pytest.fixture(scope="module")
def batch_run(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> dict[str, Path]:
    """One single-process batch over the release (exit code checked in the test)."""
    base = tmp_path_factory.mktemp("batch")
    release = _release(base / "release")
    models = write_models_json(base / "app", tiny_model)
    out = base / "out" / "nested"  # parents are created
    code = main(["predict", "-i", str(release), "-o", str(out), "--models", str(models), "--device", "cpu",
                 "--no-progress"])
    return {"release": release, "models": models, "out": out, "code": Path(str(code)), "base": base}


def test_discovery_of_release_gc_and_flat_layouts(tmp_path: Path, porcine_images) -> None:
    release = make_mini_synthrad(tmp_path / "rel", n_cases=2, bad_case=False, region="TH")
    cases = discover_cases(release)
    assert [(c.case_id, c.task, c.region, c.problem) for c in cases] == [
        ("1THX000", "mri", "TH", None), ("1THX001", "mri", "TH", None)]
    assert discover_cases(release / "Task1" / "TH" / "1THX001")[0].image.name == "mr.mha"  # one case folder

    image, mask = porcine_images
    gc = tmp_path / "gc"
    make_gc_folder(gc / "caseA", image, mask, region="Thorax")
    make_gc_folder(gc / "caseB", image, mask, task="cbct", region="Abdomen")
    (gc / "caseC" / "images").mkdir(parents=True)  # no image folder: listed with its problem
    found = {c.case_id: c for c in discover_cases(gc)}
    assert (found["caseA"].task, found["caseA"].region) == ("mri", "TH")
    assert (found["caseB"].task, found["caseB"].region) == ("cbct", "AB")
    assert found["caseC"].problem is not None and "images/mri or images/cbct" in found["caseC"].problem[1]

    flat_img, flat_mask = tmp_path / "img", tmp_path / "msk"
    for folder in (flat_img, flat_mask):
        folder.mkdir()
    for name in ("2HNA001", "case7"):
        sitk.WriteImage(crop(image, (0, 30, 20)), str(flat_img / f"{name}.mha"))
    sitk.WriteImage(crop(mask, (0, 30, 20)), str(flat_mask / "2HNA001.mha"))
    flat = {c.case_id: c for c in discover_cases(flat_img, masks_dir=flat_mask)}
    assert (flat["2HNA001"].task, flat["2HNA001"].region, flat["2HNA001"].problem) == ("cbct", "HN", None)
    assert "no mask case7.mha" in flat["case7"].problem[1]
    with pytest.raises(FileNotFoundError, match="no cases under"):
        discover_cases(_empty(tmp_path))


def _empty(tmp_path: Path) -> Path:
    (tmp_path / "empty" / "overview").mkdir(parents=True)  # a release region folder without cases
    return tmp_path / "empty"


def test_shard_deals_sorted_cases_round_robin(tmp_path: Path) -> None:
    release = make_mini_synthrad(tmp_path, n_cases=5, bad_case=False)
    cases = discover_cases(release)
    parts = [[c.case_id for c in shard(cases, r, 2)] for r in range(2)]
    assert parts == [["1ABX000", "1ABX002", "1ABX004"], ["1ABX001", "1ABX003"]]
    with pytest.raises(ValueError, match="rank 2 outside"):
        shard(cases, 2, 2)


def test_batch_matches_process_py_reports_bad_case_and_resumes(batch_run: dict[str, Path], tmp_path: Path) -> None:
    out = batch_run["out"]
    assert str(batch_run["code"]) == "1"  # one bad case → exit 1 at the end, the others are written
    assert sorted(p.name for p in out.iterdir()) == [f"{c}.mha" for c in GOOD] + ["predict_summary.json"]
    summary = json.loads((out / "predict_summary.json").read_text())
    assert summary["counts"] == {"done": 3, "skipped": 0, "failed": 1}
    bad = summary["cases"]["1ABX999"]
    assert bad["status"] == "failed" and "mask is not binary" in bad["error"] and bad["region"] == "AB"

    # the same case through process.py (grand-challenge folder, same routing) gives the same voxels
    case = batch_run["release"] / "Task1" / "AB" / "1ABX001"
    gc = make_gc_folder(tmp_path / "gc", sitk.ReadImage(str(case / "mr.mha")), sitk.ReadImage(str(case / "mask.mha")),
                        region="Abdomen")
    assert process_main(["--input", str(gc), "--output", str(tmp_path / "o"), "--device", "cpu",
                         "--models", str(batch_run["models"])]) == 0
    single = sitk.ReadImage(str(tmp_path / "o" / "images" / "synthetic-ct" / "case-uuid.mha"))
    batch = sitk.ReadImage(str(out / "1ABX001.mha"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(batch), sitk.GetArrayFromImage(single))
    assert batch.GetOrigin() == single.GetOrigin() and batch.GetSpacing() == single.GetSpacing()

    # resume: done cases are skipped (untouched), an interrupted write's temporary is removed and never counts
    stamp = (out / "1ABX000.mha").stat().st_mtime_ns
    (out / "1ABX002.mha").unlink()
    (out / ".1ABX002.abc123.mha").write_bytes(b"half a file")
    code = main(["predict", "-i", str(batch_run["release"]), "-o", str(out), "--models", str(batch_run["models"]),
                 "--device", "cpu", "--no-progress"])
    assert code == 1
    again = json.loads((out / "predict_summary.json").read_text())
    assert again["counts"] == {"done": 1, "skipped": 2, "failed": 1}
    assert again["cases"]["1ABX002"]["status"] == "done"
    assert (out / "1ABX000.mha").stat().st_mtime_ns == stamp
    assert not list(out.glob(".*.mha"))


def test_torchrun_two_gloo_ranks_share_the_cases(batch_run: dict[str, Path]) -> None:
    out = batch_run["base"] / "ddp"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
         "synthct.cli.main", "predict", "-i", str(batch_run["release"]), "-o", str(out), "--models",
         str(batch_run["models"]), "--device", "cpu", "--no-progress"],
        capture_output=True, text=True, timeout=600, env=env, cwd=str(batch_run["base"]),
    )
    assert proc.returncode != 0, proc.stderr  # the bad case fails on its rank; both ranks exit 1
    assert "rank 0/2 on cpu: 2 of 4 case(s)" in proc.stderr and "rank 1/2 on cpu: 2 of 4 case(s)" in proc.stderr
    summary = json.loads((out / "predict_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["counts"] == {"done": 3, "skipped": 0, "failed": 1}
    for case in GOOD:  # one thread per rank sums in another order than the 2-thread run: float32 rounding only
        np.testing.assert_allclose(sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"{case}.mha"))),
                                   sitk.GetArrayFromImage(sitk.ReadImage(str(batch_run["out"] / f"{case}.mha"))),
                                   rtol=0, atol=1e-2)


def test_single_predict_creates_parent_folders_first(tmp_path: Path, tiny_model: Path, porcine_images) -> None:
    image, mask = porcine_images
    sitk.WriteImage(crop(image, (0, 30, 20)), str(tmp_path / "mr.mha"))
    sitk.WriteImage(crop(mask, (0, 30, 20)), str(tmp_path / "mask.mha"))
    out = tmp_path / "not" / "yet" / "sct.mha"
    assert main(["predict", "--model", str(tiny_model), "--image", str(tmp_path / "mr.mha"), "--mask",
                 str(tmp_path / "mask.mha"), "--out", str(out), "--device", "cpu", "--step", "0.5"]) == 0
    assert out.is_file() and (out.stat().st_mode & 0o777) == 0o644  # not mkstemp's 0600
    assert not list(out.parent.glob(".*"))
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert main(["predict", "--model", str(tiny_model), "--image", str(tmp_path / "mr.mha"), "--mask",
                 str(tmp_path / "mask.mha"), "--out", str(blocked / "sct.mha"), "--device", "cpu"]) == 1


def test_interrupted_batch_keeps_finished_cases_and_writes_the_summary(tmp_path: Path, tiny_model: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capfd) -> None:
    """Ctrl-C during the second case: one ERROR line, exit 130, the first sCT kept and predict_summary.json written
    with the interrupted state (the not-reached ids listed); the same command then resumes."""
    from synthct.challenge import batch

    release = _release(tmp_path / "release")
    models = write_models_json(tmp_path / "app", tiny_model)
    out = tmp_path / "out"
    real = batch.synthesise
    calls = []

    def second_call_interrupted(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(batch, "synthesise", second_call_interrupted)
    argv = ["predict", "-i", str(release), "-o", str(out), "--models", str(models), "--device", "cpu", "--no-progress"]
    assert main(argv) == 130
    err = capfd.readouterr().err
    assert "Traceback" not in err and "ERROR synthct: synthct predict: stopped by SIGINT (exit 130)" in err
    summary = json.loads((out / "predict_summary.json").read_text())
    assert summary["interrupted"] is True and summary["counts"] == {"done": 1, "skipped": 0, "failed": 0}
    assert summary["not_reached"] == ["1ABX001", "1ABX002", "1ABX999"]
    assert sorted(p.name for p in out.iterdir()) == ["1ABX000.mha", "predict_summary.json"]
    monkeypatch.undo()
    assert main(argv) == 1  # resumes: 1ABX000 skipped, the others predicted, the bad case failed
    summary = json.loads((out / "predict_summary.json").read_text())
    assert summary["interrupted"] is False and summary["counts"] == {"done": 2, "skipped": 1, "failed": 1}
