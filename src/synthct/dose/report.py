"""Pictures of a dose case: a dose-difference / gamma-failure montage per sCT and a DVH plot per modality.

Montage rows: axial, coronal and sagittal slices through the target's centre, in the orientation of ``synthct
evaluate``'s montages (:func:`synthct.metrics.report.to_display_orientation`: anterior at the top, patient right on
the image left, superior at the top); columns: the plan's dose on the CT and on the sCT (0-110 % Rx), the difference
sCT − CT in % of Rx (±:data:`DIFF_WINDOW_PERCENT`), and the gamma failures (gamma > 1 in red; grey = evaluated and
passing). matplotlib is imported inside the functions (Agg canvas).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from synthct.dose.metrics import cumulative_dvh
from synthct.dose.structures import CaseStructures
from synthct.metrics.report import draw_views, new_figure, save_figure, to_display_orientation

#: Window of the dose-difference column, % of Rx.
DIFF_WINDOW_PERCENT: float = 5.0


def save_dose_montage(path: Path, plan_dose: np.ndarray, dose: np.ndarray, gamma: np.ndarray,
                      structures: CaseStructures, rx: float, title: str = "") -> Path:
    """Write the montage of one recomputed dose (all (Z, Y, X) on the working grid; doses in Gy)."""
    failures = np.where(np.isnan(gamma), 0.0, np.where(gamma > 1.0, 2.0, 1.0))
    arrays, spacing = to_display_orientation(
        [plan_dose, dose, 100.0 * (dose - plan_dose) / rx, failures, structures.target.astype(np.float32)],
        structures.reference)
    ct_d, sct_d, diff, fail, target = (np.asarray(a) for a in arrays)
    idx = np.argwhere(target > 0.5)
    centre = tuple(int(v) for v in (idx.mean(axis=0) if idx.size else np.array(target.shape) // 2))
    from matplotlib.colors import ListedColormap

    columns = [("dose on CT [0, 110 % Rx]", ct_d, (0.0, 1.1 * rx), "jet"),
               ("dose on sCT [0, 110 % Rx]", sct_d, (0.0, 1.1 * rx), "jet"),
               (f"sCT - CT [±{DIFF_WINDOW_PERCENT:g} % Rx]", diff, (-DIFF_WINDOW_PERCENT, DIFF_WINDOW_PERCENT), "bwr"),
               ("gamma > 1 (red)", fail, (0.0, 2.0), ListedColormap(["black", "0.6", "red"]))]
    sz, sy, sx = spacing
    heights = [target.shape[1] * sy, target.shape[0] * sz, target.shape[0] * sz]  # mm shown per row
    fig = new_figure(3.2 * len(columns), 3.2 * sum(heights) / (target.shape[2] * sx) + 0.8)
    axes = fig.subplots(3, len(columns), squeeze=False, gridspec_kw={"height_ratios": heights})
    draw_views(axes, columns, centre, spacing, outline=target)
    return save_figure(fig, path, title)


def save_dvh_plot(path: Path, plan_dose: np.ndarray, doses: Mapping[str, np.ndarray], structures: CaseStructures,
                  rx: float, title: str = "") -> Path:
    """Cumulative DVH of every structure (one panel each): the plan on the CT solid, each sCT dashed."""
    named = {structures.target_name: structures.target, **structures.oars}
    edges = np.linspace(0.0, 1.2 * max(rx, float(plan_dose.max())), 241)
    n = len(named)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig = new_figure(4.0 * cols, 3.0 * rows + 0.5)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, (name, mask) in enumerate(named.items()):
        ax = axes[i // cols][i % cols]
        ax.plot(edges, 100 * cumulative_dvh(plan_dose, mask, edges), "k-", label="CT", linewidth=1.5)
        for stem, dose in doses.items():
            ax.plot(edges, 100 * cumulative_dvh(dose, mask, edges), "--", label=stem, linewidth=1.0)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("dose (Gy)", fontsize=8)
        ax.set_ylabel("volume (%)", fontsize=8)
        ax.set_ylim(0, 101)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7)
    for j in range(n, rows * cols):
        axes[j // cols][j % cols].set_axis_off()
    return save_figure(fig, path, title)
