"""``synthct dose`` end to end on the real held-out pancreas slab (real CT, real CBCT, the clinic's contours).

One module-scoped run plans photons and protons on the CT once and recomputes them on five sCTs: the CT itself
(identity), the CT + 25/+50/+100 HU inside the body (sensitivity) and the raw CBCT. The settings are coarser than the
defaults (conftest.FAST) so the whole module stays within about a minute on 2 cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from testutils import DOSE_FAST as FAST

from synthct.cli.main import main
from synthct.dose.gamma import GammaCriteria, gamma_index, pass_rate, pymedphys_pass_rate

pytest.importorskip("pyRadPlan", reason="the dose extra is not installed (make dose-venv)")

OFFSETS = (25, 50, 100)


def _shifted_ct(slab: Path, out: Path, hu: int) -> Path:
    ct, mask = sitk.ReadImage(str(slab / "ct.mha")), sitk.ReadImage(str(slab / "mask.mha"))
    a = sitk.GetArrayFromImage(ct).astype(np.float32)
    a[sitk.GetArrayFromImage(mask) > 0] += hu
    image = sitk.GetImageFromArray(a)
    image.CopyInformation(ct)
    path = out / f"ct_plus{hu}.mha"
    sitk.WriteImage(image, str(path))
    return path


@pytest.fixture(scope="module")
def run(slab: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    work = tmp_path_factory.mktemp("dose")
    identity = work / "same.mha"
    sitk.WriteImage(sitk.ReadImage(str(slab / "ct.mha")), str(identity))
    scts = [identity, *(_shifted_ct(slab, work, hu) for hu in OFFSETS), slab / "cbct.mha"]
    out = work / "out"
    rc = main(["dose", "--ct", str(slab / "ct.mha"), "--sct", *map(str, scts), "--mask", str(slab / "mask.mha"),
               "--structures", str(slab / "labels.mha"), "--structure-names", str(slab / "labels.json"),
               "--out", str(out), "--plan-cache", str(work / "cache"), *FAST])
    assert rc == 0
    return out, json.loads((out / "dose_metrics.json").read_text())


def test_outputs_are_complete(run: tuple[Path, dict], slab: Path) -> None:
    out, data = run
    assert data["target"] == {"name": "ROI", "volume_cc": pytest.approx(data["target"]["volume_cc"]),
                              "synthetic": False, "how": "label 4 (ROI) of the structure map"}
    assert set(data["oars"]) == {"Bowel_sm_planCT", "Stomach_duo_planCT"}  # the lungs lie above the slab
    assert set(data["scts"]) == {"same", "ct_plus25", "ct_plus50", "ct_plus100", "cbct"}
    ct = sitk.ReadImage(str(slab / "ct.mha"))
    for modality in ("photon", "proton"):
        for stem, entry in data["scts"].items():
            m = entry[modality]
            assert {"dose_mae_percent", "dvh_error", "gamma_pass_percent", "plan"} <= set(m)
            assert m["plan"]["modality"] == modality and m["plan"]["dose_grid_mm"] == 6.0
            assert (out / "qa" / f"{modality}_{stem}.png").stat().st_size > 10_000
            dose = sitk.ReadImage(str(out / "doses" / f"{modality}_{stem}.mha"))
            assert dose.GetSize() == ct.GetSize() and dose.GetSpacing() == ct.GetSpacing()
        assert (out / "qa" / f"{modality}_dvh.png").is_file()
        plan_dvh = data["plans"][modality]["dvh"]["ROI"]
        assert 0.8 * 2.0 < plan_dvh["d50"] < 1.2 * 2.0  # the plan covers its target


def test_identity_scores_perfectly(run: tuple[Path, dict]) -> None:
    for modality in ("photon", "proton"):
        m = run[1]["scts"]["same"][modality]
        assert m["dose_mae_percent"] < 1e-3
        assert m["dvh_error"] < 1e-4
        assert m["gamma_pass_percent"] == 100.0


def test_proton_metrics_worsen_with_the_hu_offset(run: tuple[Path, dict]) -> None:
    scts = run[1]["scts"]
    p = [scts[f"ct_plus{hu}"]["proton"] for hu in OFFSETS]
    mae = [m["dose_mae_percent"] for m in p]
    dvh = [m["dvh_error"] for m in p]
    gamma = [m["gamma_pass_percent"] for m in p]
    assert mae[0] < mae[1] < mae[2], mae
    assert dvh[0] < dvh[1] < dvh[2], dvh
    assert gamma[0] > gamma[1] > gamma[2], gamma
    assert 0.0 < mae[0]


def test_raw_cbct_is_worse_than_a_small_offset(run: tuple[Path, dict]) -> None:
    scts = run[1]["scts"]
    for modality in ("photon", "proton"):
        assert scts["cbct"][modality]["dose_mae_percent"] > scts["ct_plus25"][modality]["dose_mae_percent"]


def test_our_gamma_matches_pymedphys_on_the_real_cbct_pair(run: tuple[Path, dict]) -> None:
    """Real pair: the proton plan on the CT vs on the raw CBCT (every 3rd in-plane voxel of the CT-grid cubes, 3.2 x
    3.2 x 3 mm). Ours within 0.5 points of pymedphys, both at 10 steps per DTA (measured here: 58.13 vs 58.38 %;
    docs/dose.md "Gamma")."""
    pytest.importorskip("numba")
    out, _ = run
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "doses" / "proton_ct.mha")))[:, ::3, ::3]
    ev = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "doses" / "proton_cbct.mha")))[:, ::3, ::3]
    spacing = (3.0, 3 * 1.07421875, 3 * 1.07421875)
    ours = pass_rate(gamma_index(ref, ev, spacing, GammaCriteria()))
    theirs = pymedphys_pass_rate(ref, ev, spacing, GammaCriteria())
    assert 30.0 < ours < 99.0  # a real, non-trivial pair
    assert abs(ours - theirs) < 0.5, (ours, theirs)


def test_cached_plan_is_reused(run: tuple[Path, dict], slab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, data = run
    capsys.readouterr()
    again = out.parent / "again"
    rc = main(["dose", "--ct", str(slab / "ct.mha"), "--sct", str(slab / "cbct.mha"), "--mask",
               str(slab / "mask.mha"), "--structures", str(slab / "labels.mha"), "--structure-names",
               str(slab / "labels.json"), "--modality", "proton", "--out", str(again), "--plan-cache",
               str(out.parent / "cache"), *FAST])
    assert rc == 0
    assert "reusing cached weights" in capsys.readouterr().err
    second = json.loads((again / "dose_metrics.json").read_text())["scts"]["cbct"]["proton"]
    # same weights; the CT dose is recomputed by a forward calculation instead of the influence matrix (float32,
    # ~1e-6 Gy apart), so the metric agrees to ~1e-5 % Rx
    assert second["dose_mae_percent"] == pytest.approx(data["scts"]["cbct"]["proton"]["dose_mae_percent"], abs=1e-3)


def test_a_custom_hlut_is_applied(slab: Path, tmp_path: Path) -> None:
    """The same photon plan recomputed with a lookup table that raises every density by 10 % gives another dose; the
    default table read back from CSV gives the same dose."""
    from synthct.dose import engine
    from synthct.dose.case import DoseCase, load_structures
    from synthct.dose.settings import default_settings
    from synthct.dose.structures import resample_hu
    from synthct.io.image import read_image

    settings = default_settings("photon", "AB", beams=5, ct_resolution_mm=4.0, dose_grid_mm=6.0, max_iter=5)
    _, geometry, ct_image = read_image(slab / "ct.mha")
    case = DoseCase("hlut", slab / "ct.mha", {}, slab / "mask.mha", (settings,))
    structures = load_structures(case, ct_image, geometry, settings.ct_resolution_mm)
    hu, masks = resample_hu(ct_image, structures.reference), structures.engine_masks()
    plan = engine.make_plan(hu, masks, settings)
    default = engine.hlut_table()
    np.savetxt(tmp_path / "default.csv", default, delimiter=",", header="HU,value")
    np.savetxt(tmp_path / "denser.csv", default * [1.0, 1.1], delimiter=",")
    same, _ = engine.forward_dose(plan, hu, masks, engine.hlut_table(str(tmp_path / "default.csv")))
    denser, _ = engine.forward_dose(plan, hu, masks, engine.hlut_table(str(tmp_path / "denser.csv")))
    assert np.allclose(same, plan.dose, atol=1e-5)
    assert np.abs(denser - plan.dose).max() > 0.02 * float(plan.dose.max())
    (tmp_path / "bad.csv").write_text("0,1\n-100,0.9\n")
    with pytest.raises(ValueError, match="increasing HU"):
        engine.hlut_table(str(tmp_path / "bad.csv"))
