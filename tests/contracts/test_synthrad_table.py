"""Tasks, regions and image suffixes exist once, in ``synthct.contracts.synthrad``: one new row there is enough for
``synthct convert``, ``synthct route``, ``synthct evaluate`` and the challenge input to accept a new region."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from testutils import REPO, SAMPLES, crop, make_gc_folder, make_mini_synthrad, write_models_json

from synthct.challenge.inputs import read_region
from synthct.challenge.routing import resolve_route
from synthct.cli.main import main
from synthct.contracts import synthrad
from synthct.metrics.cases import region_of
from synthct.metrics.segmentation import REGION_CLASSES, region_classes

BRAIN = synthrad.Region("BR", "Brain", 4, (90, 91))


@pytest.fixture()
def brain(monkeypatch: pytest.MonkeyPatch) -> synthrad.Region:
    """SynthRAD2023's "Brain" added as a fourth region: the only edit is the contracts table."""
    monkeypatch.setattr(synthrad, "REGIONS", (*synthrad.REGIONS, BRAIN))
    return BRAIN


def test_table_lookups_quote_the_bad_value() -> None:
    assert synthrad.region_codes() == ("HN", "TH", "AB") and synthrad.task_names() == ("mri", "cbct")
    assert synthrad.get_task(2).name == synthrad.get_task("2").name == synthrad.get_task("cbct").name == "cbct"
    with pytest.raises(ValueError, match=r"region must be one of \('HN', 'TH', 'AB'\), got 'Brain'"):
        synthrad.get_region("Brain")
    with pytest.raises(ValueError, match=r"task must be one of \('mri', 'cbct'\) .*got 'ct'"):
        synthrad.get_task("ct")
    assert synthrad.case_id_pattern().match("2THA012") and not synthrad.case_id_pattern().match("3THA012")
    assert synthrad.strip_image_suffix("sct_1HNA001.NRRD") == "sct_1HNA001"
    assert synthrad.strip_image_suffix(".mha") is None


def test_a_new_region_flows_through_convert_route_and_evaluate(brain: synthrad.Region, tmp_path: Path,
                                                                tiny_results: Path, tiny_model: Path,
                                                                capsys) -> None:
    assert region_of("1BRA001") == "BR" and region_classes("br") == (90, 91) and "BR" in REGION_CLASSES

    release = make_mini_synthrad(tmp_path / "release", n_cases=2, bad_case=False, region="BR")
    assert main(["convert", str(release), str(tmp_path / "raw"), "--task", "1", "--region", "BR"]) == 0
    dataset = tmp_path / "raw" / "Dataset514_SynthRAD2025Task1BR"
    assert json.loads((dataset / "dataset.json").read_text())["synthct"]["regions"] == ["BR"]
    assert sorted(p.name for p in (dataset / "labelsTr").iterdir()) == ["1BRX000.mha", "1BRX001.mha"]

    models = write_models_json(tmp_path / "app", tiny_model)  # every region (BR too) → the tiny model
    model = tmp_path / "app" / "weights" / "mri" / "BR"
    assert main(["export", str(tiny_results), str(model)]) == 0
    assert main(["route", "mri", "BR", str(model), "--force", "--models", str(models)]) == 0
    assert resolve_route(models, "mri", "BR").model_dir == model.resolve()
    assert "mri   BR     " in capsys.readouterr().out

    gc_case = make_gc_folder(tmp_path / "gc", *(sitk.ReadImage(str(SAMPLES / "porcine" / f"{n}.mha"))
                                              for n in ("mr", "mask")), region="Brain")
    assert read_region(gc_case) == "BR"

    row = _evaluate_one(tmp_path, "1BRA001.mha", "sct_1BRA001.mha", 25)
    assert (row["case_id"], row["region"]) == ("1BRA001", "BR") and row["mae"] == pytest.approx(25.0, abs=0.5)


def test_without_the_row_the_new_region_is_refused(tmp_path: Path) -> None:
    release = make_mini_synthrad(tmp_path / "release", n_cases=1, bad_case=False, region="BR")
    with pytest.raises(SystemExit):  # argparse: invalid choice 'BR'
        main(["convert", str(release), str(tmp_path / "raw"), "--task", "1", "--region", "BR"])
    assert region_of("1BRA001") == "unknown"


def test_evaluate_accepts_an_nrrd_prediction(tmp_path: Path) -> None:
    """The challenge input accepts .nrrd, and so does evaluation (one IMAGE_SUFFIXES)."""
    row = _evaluate_one(tmp_path, "1ABA001.mha", "sct_1ABA001.nrrd", -30)
    assert row["case_id"] == "1ABA001" and row["mae"] == pytest.approx(30.0, abs=0.5)


def _evaluate_one(tmp_path: Path, gt_name: str, pred_name: str, offset: int) -> dict:
    """``synthct evaluate`` on one real porcine CT crop and that crop + ``offset`` HU as the prediction; its row."""
    ct = crop(sitk.ReadImage(str(SAMPLES / "porcine" / "ct.mha")), (0, 30, 20))
    for folder, name, shift in (("gt", gt_name, 0), ("pred", pred_name, offset)):
        (tmp_path / folder).mkdir()
        image = sitk.GetImageFromArray(sitk.GetArrayFromImage(ct) + np.int16(shift))
        image.CopyInformation(ct)
        sitk.WriteImage(image, str(tmp_path / folder / name))
    out = tmp_path / "eval"
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out", str(out),
                 "--no-report", "--no-progress", "--totalseg-executable", "no-such-tool"]) == 0
    (row,) = json.loads((out / "metrics.json").read_text())["results"]
    return row


def test_no_other_module_lists_the_region_codes() -> None:
    """A tuple/list/set of two or more region codes outside the contracts table is a second source of truth."""
    codes = set(synthrad.region_codes())
    bad = []
    for path in sorted((REPO / "src" / "synthct").rglob("*.py")):
        if path.name == "synthrad.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict):
                items = node.keys if isinstance(node, ast.Dict) else node.elts
                found = {e.value for e in items if isinstance(e, ast.Constant) and e.value in codes}
                if len(found) >= 2:
                    bad.append(f"{path.relative_to(REPO)}:{node.lineno} lists {sorted(found)}")
    assert not bad, "\n".join(bad)
