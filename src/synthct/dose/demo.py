"""The dose demo (``make demo-dose`` = ``synthct demo --task cbct --dose``) on the real held-out pancreas slab.

Plans (photon IMRT, proton IMPT; the defaults of :mod:`synthct.dose.settings`) are made on the patient's real planning
CT with the clinic's real contours (ROI as target; Bowel_sm and Stomach_duo as OARs; the lungs lie above the slab)
and recomputed on the raw CBCT and on the bundled Task 2 model's sCT. Writes ``OUT/dose/`` (the full
:mod:`synthct.dose.case` output), ``OUT/dose_table.md`` and ``OUT/dose_preview.png`` (per modality: the CT plan's
dose, and for the CBCT and the sCT the dose difference and the gamma failures, axial slice through the target).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from synthct.dose.case import DoseCase, run_case
from synthct.dose.report import DIFF_WINDOW_PERCENT
from synthct.dose.settings import MODALITIES, default_settings
from synthct.metrics.report import new_figure, save_figure

LOG = logging.getLogger(__name__)

#: Files of samples/pancreas_cbct the demo reads (the slab is cut from them).
SAMPLE_FILES: tuple[str, ...] = ("ct", "cbct", "mask", "labels")
#: Row labels of the table, per sCT stem.
ROWS: dict[str, str] = {"cbct": "raw CBCT", "sct": "bundled model's sCT"}


def write_slab(sample: Path, slices: tuple[int, int], out: Path) -> dict[str, Path]:
    """The held-out slab of the sample's CT, CBCT, body mask and contours as files under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in SAMPLE_FILES:
        image = sitk.ReadImage(str(sample / f"{name}.mha"))[:, :, slices[0] : slices[1]]
        paths[name] = out / f"{name}.mha"
        sitk.WriteImage(image, str(paths[name]), useCompression=True)
    return paths


def run_dose_demo(sample: Path, slices: tuple[int, int], sct: Path, out: Path) -> dict[str, Any]:
    """Run the dose demo for the model output ``sct`` (on the slab's grid); returns dose_metrics.json's content."""
    files = write_slab(sample, slices, out / "dose_inputs")
    case = DoseCase(case_id="pancreas-heldout-slab", ct=files["ct"], scts={"cbct": files["cbct"], "sct": sct},
                    mask=files["mask"], settings=tuple(default_settings(m, "AB") for m in MODALITIES),
                    structures=files["labels"], structure_names=sample / "labels.json")
    result = run_case(case, out / "dose", overwrite=True)
    (out / "dose_table.md").write_text(table(result))
    save_preview(out / "dose_preview.png", out / "dose", result)
    return result


def table(result: dict[str, Any]) -> str:
    """Markdown table: per modality and sCT, dose MAE (% Rx), DVH error, gamma pass rate."""
    lines = ["| modality | dose on | dose MAE % Rx | DVH error | gamma 2 %/2 mm % |", "|---|---|---|---|---|"]
    for modality in MODALITIES:
        lines.append(f"| {modality} | planning CT (reference) | 0 | 0 | 100 |")
        for stem, label in ROWS.items():
            m = result["scts"][stem][modality]
            lines.append(f"| {modality} | {label} | {m['dose_mae_percent']:.2f} | {m['dvh_error']:.3f} | "
                         f"{m['gamma_pass_percent']:.1f} |")
    return "\n".join(lines) + "\n"


def _axial(path: Path, z: int) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[z]


def save_preview(path: Path, dose_dir: Path, result: dict[str, Any]) -> Path:
    """One row per modality: the CT plan's dose, then the dose difference and the gamma failures (red) for the CBCT
    and the sCT; axial slice through the middle of the slab (CT grid; gamma maps on the working grid)."""
    from matplotlib.colors import ListedColormap

    ct_grid = sitk.ReadImage(str(dose_dir / "doses" / "photon_ct.mha"))
    z = ct_grid.GetSize()[2] // 2
    z_mm = z * ct_grid.GetSpacing()[2]
    fig = new_figure(3.0 * 5, 3.0 * len(MODALITIES) + 0.6)
    axes = fig.subplots(len(MODALITIES), 5, squeeze=False)
    for row, modality in enumerate(MODALITIES):
        rx = result["plans"][modality]["settings"]["prescription_gy"]
        ref = _axial(dose_dir / "doses" / f"{modality}_ct.mha", z)
        panels: list[tuple[str, np.ndarray, tuple[float, float], Any]] = [("dose on CT", ref, (0.0, 1.1 * rx), "jet")]
        for stem, label in ROWS.items():
            diff = 100.0 * (_axial(dose_dir / "doses" / f"{modality}_{stem}.mha", z) - ref) / rx
            m = result["scts"][stem][modality]
            caption = f"{label} - CT (% Rx)\nMAE {m['dose_mae_percent']:.2f} %, gamma {m['gamma_pass_percent']:.1f} %"
            panels.append((caption, diff, (-DIFF_WINDOW_PERCENT, DIFF_WINDOW_PERCENT), "bwr"))
        for stem, label in ROWS.items():
            gamma = sitk.ReadImage(str(dose_dir / "doses" / f"{modality}_{stem}_gamma.mha"))
            g = sitk.GetArrayFromImage(gamma)[min(int(round(z_mm / gamma.GetSpacing()[2])), gamma.GetSize()[2] - 1)]
            panels.append((f"{label}: gamma > 1 (red)", np.where(g < 0, 0.0, np.where(g > 1, 2.0, 1.0)), (0.0, 2.0),
                           ListedColormap(["black", "0.6", "red"])))
        for col, (title, image, (vmin, vmax), cmap) in enumerate(panels):
            ax = axes[row][col]
            ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_title(f"{modality}: {title}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    return save_figure(fig, path, "synthct dose demo: real pancreas CT plan (ROI target), recomputed on the raw CBCT "
                       "and the sCT")
