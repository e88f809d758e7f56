"""Visual QA of an evaluation: a PNG montage per case, a per-region MAE box plot and an HTML index page.

Montage: rows are the axial, coronal and sagittal slices through the centre of the body mask's bounding box; columns
are the input (MR or CBCT, if given), the sCT, the CT and ``|sCT - CT|`` (zero outside the mask, as scored). The HU
images use fixed windows (:data:`CT_WINDOW_HU`, :data:`DIFF_WINDOW_HU`) so that montages of different cases compare
directly; the input has no HU scale and is shown between its 1st and 99th percentiles inside the mask. Pixels keep
their physical aspect ratio.

matplotlib is imported inside the functions (Agg canvas, no pyplot state), so importing this module stays cheap.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

LOG = logging.getLogger(__name__)

#: Display window of sCT and CT, HU.
CT_WINDOW_HU: tuple[float, float] = (-1000.0, 1000.0)
#: Display window of the absolute difference, HU.
DIFF_WINDOW_HU: tuple[float, float] = (0.0, 500.0)
#: Percentiles (inside the mask) that window the input MR / CBCT.
INPUT_PERCENTILES: tuple[float, float] = (1.0, 99.0)

_VIEWS = ("axial", "coronal", "sagittal")


def new_figure(width_in: float, height_in: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - matplotlib comes with nnunetv2
        raise ImportError("the QA report needs matplotlib: pip install matplotlib") from exc
    fig = Figure(figsize=(width_in, height_in), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _centre(mask: np.ndarray | None, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Centre voxel of the mask's bounding box (the image centre without a mask or with an empty one)."""
    if mask is not None and mask.any():
        idx = [np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != ax))) for ax in range(mask.ndim)]
        return tuple(int((i[0] + i[-1]) // 2) for i in idx)
    return tuple(n // 2 for n in shape)


def _slices(volume: np.ndarray, centre: tuple[int, ...]) -> list[np.ndarray]:
    """Axial (Y, X), coronal (Z, X) and sagittal (Z, Y) slices of a (Z, Y, X) volume through ``centre``."""
    z, y, x = centre
    return [volume[z], volume[:, y, :], volume[:, :, x]]


def _aspects(spacing_zyx: Sequence[float]) -> list[float]:
    sz, sy, sx = spacing_zyx
    return [sy / sx, sz / sx, sz / sy]


def to_display_orientation(arrays: Sequence[np.ndarray | None], reference: Any) -> tuple[list[np.ndarray | None],
                                                                                       tuple[float, float, float]]:
    """Reorient (Z, Y, X) arrays on ``reference``'s grid (a SimpleITK image) to one fixed anatomical orientation.

    The arrays are resampled (by axis permutation and flips only, ``sitk.DICOMOrient(..., "LPS")``) to the identity
    direction: x towards the patient's left, y posterior, z superior; so the montage shows every case the same way
    (axial: anterior at the top, patient right on the image left; coronal/sagittal: superior at the top), whatever
    its direction matrix. Oblique directions go to the nearest axes.

    Returns:
        the reoriented arrays (None stays None) and their spacing (z, y, x) in mm.
    """
    import SimpleITK as sitk

    out: list[np.ndarray | None] = []
    spacing: tuple[float, float, float] = tuple(reference.GetSpacing()[::-1])
    for arr in arrays:
        if arr is None:
            out.append(None)
            continue
        image = sitk.GetImageFromArray(np.ascontiguousarray(arr))
        image.CopyInformation(reference)
        oriented = sitk.DICOMOrient(image, "LPS")
        spacing = tuple(oriented.GetSpacing()[::-1])
        out.append(sitk.GetArrayFromImage(oriented))
    return out, spacing


def save_montage(
    path: Path,
    *,
    ct: np.ndarray,
    sct: np.ndarray,
    spacing_zyx: Sequence[float],
    mask: np.ndarray | None = None,
    input_image: np.ndarray | None = None,
    title: str = "",
) -> Path:
    """Write the QA montage of one case as a PNG.

    Args:
        path: output PNG path (parent folders are created).
        ct: ground-truth CT, (Z, Y, X), HU.
        sct: synthetic CT, same shape, HU.
        spacing_zyx: voxel spacing (z, y, x), mm, for the aspect ratio.
        mask: body mask, same shape (nonzero inside); chooses the slices and the input window.
        input_image: MR or CBCT, same shape, any unit; adds the first column when given.
        title: figure title (case id and metrics).

    Returns:
        ``path``.
    """
    if ct.shape != sct.shape or ct.ndim != 3:
        raise ValueError(f"ct and sct must be 3-D of one shape, got {ct.shape} and {sct.shape}")
    inside = None if mask is None else np.asarray(mask) > 0
    columns: list[tuple[str, np.ndarray, tuple[float, float], str]] = []
    if input_image is not None:
        ref = input_image[inside] if inside is not None and inside.any() else input_image
        lo, hi = (float(v) for v in np.percentile(ref, INPUT_PERCENTILES))
        columns.append(("input", input_image, (lo, hi if hi > lo else lo + 1.0), "gray"))
    diff = np.abs(sct.astype(np.float32) - ct.astype(np.float32))
    if inside is not None:
        diff[~inside] = 0.0  # as scored: both images are -1024 HU outside the mask
    columns += [
        (f"sCT [{CT_WINDOW_HU[0]:.0f}, {CT_WINDOW_HU[1]:.0f}] HU", sct, CT_WINDOW_HU, "gray"),
        (f"CT [{CT_WINDOW_HU[0]:.0f}, {CT_WINDOW_HU[1]:.0f}] HU", ct, CT_WINDOW_HU, "gray"),
        (f"|sCT - CT| [{DIFF_WINDOW_HU[0]:.0f}, {DIFF_WINDOW_HU[1]:.0f}] HU", diff, DIFF_WINDOW_HU, "magma"),
    ]
    fig = new_figure(3.2 * len(columns), 3.2 * len(_VIEWS) + 0.6)
    axes = fig.subplots(len(_VIEWS), len(columns), squeeze=False)
    draw_views(axes, columns, _centre(inside, ct.shape), spacing_zyx)
    return save_figure(fig, path, title)


def draw_views(axes: Any, columns: Sequence[tuple[str, np.ndarray, tuple[float, float], Any]],
               centre: tuple[int, ...], spacing_zyx: Sequence[float], outline: np.ndarray | None = None) -> None:
    """Fill a (3 x len(columns)) grid of matplotlib axes: rows axial/coronal/sagittal through ``centre``, one column
    per ``(label, (Z, Y, X) volume, (vmin, vmax), colormap)``, physical aspect ratios; ``outline`` (a (Z, Y, X) 0/1
    volume) is drawn as a white contour on every panel."""
    aspects = _aspects(spacing_zyx)
    for col, (label, volume, (vmin, vmax), cmap) in enumerate(columns):
        planes = _slices(volume, centre)
        lines: list[np.ndarray | None] = list(_slices(outline, centre)) if outline is not None else [None] * 3
        for row, (view, plane, aspect) in enumerate(zip(_VIEWS, planes, aspects, strict=True)):
            ax = axes[row][col]
            origin = "upper" if view == "axial" else "lower"
            ax.imshow(plane, cmap=cmap, vmin=vmin, vmax=vmax, aspect=aspect, origin=origin, interpolation="nearest")
            line = lines[row]
            if line is not None and np.any(line > 0.5):
                ax.contour(line, levels=[0.5], colors="white", linewidths=0.6, origin=origin)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(label, fontsize=9)
            if col == 0:
                ax.set_ylabel(view, fontsize=9)


def save_figure(fig: Any, path: Path, title: str = "") -> Path:
    """Add ``title``, lay out and write ``fig`` as ``path`` (parent folders created); returns ``path``."""
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def save_region_boxplot(path: Path, values_by_region: Mapping[str, Sequence[float]], *, metric: str = "mae") -> Path:
    """Box plot of one metric per region (one box per region, cases as points).

    Args:
        path: output PNG path.
        values_by_region: region → per-case values (non-finite values are left out).
        metric: metric name for the axis label (``"mae"`` is labelled in HU).

    Returns:
        ``path``.
    """
    regions = sorted(values_by_region)
    data = [[v for v in values_by_region[r] if math.isfinite(v)] for r in regions]
    fig = new_figure(1.6 + 1.2 * max(len(regions), 1), 4.0)
    ax = fig.subplots()
    if regions:
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(range(1, len(regions) + 1), [f"{r}\n(n={len(d)})" for r, d in zip(regions, data, strict=True)])
        rng = np.random.default_rng(0)
        for i, d in enumerate(data, start=1):
            ax.plot(i + rng.uniform(-0.08, 0.08, len(d)), d, "o", ms=3, alpha=0.6, color="tab:blue")
    ax.set_ylabel(f"{metric.upper()} (HU)" if metric == "mae" else metric)
    ax.set_title(f"{metric.upper()} per region")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return html.escape(str(value))


def write_index(
    path: Path,
    *,
    results: Sequence[Mapping[str, Any]],
    aggregates: Mapping[str, Mapping[str, float]],
    montages: Mapping[str, str],
    boxplot: str | None,
    notes: Sequence[str] = (),
    aggregates_by_region: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
    per_class: Sequence[Mapping[str, Any]] = (),
) -> Path:
    """Write the HTML index: notes, the aggregate tables (all cases, per region), the per-class Dice/HD95 table with
    the missed classes, the box plot and one row per case with its montage.

    Args:
        path: output HTML path; image links are relative to its folder.
        results: per-case rows (``case_id``, ``region`` and metric values).
        aggregates: metric → statistic name → value.
        montages: case id → montage path relative to ``path``'s folder.
        boxplot: box-plot path relative to ``path``'s folder, or None.
        notes: sentences shown above the tables (e.g. which geometric metric was used).
        aggregates_by_region: region → metric → statistic → value.
        per_class: rows ``case_id``, ``label``, ``dice``, ``hd95_mm``, ``missing`` (TotalSegmentator classes).

    Returns:
        ``path``.
    """
    metric_keys = [k for k in (results[0] if results else {}) if k not in ("case_id", "region")]
    stat_keys = list(next(iter(aggregates.values()), {}))
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"><title>synthct evaluation</title>',
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1.5em}"
        "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}th{background:#eee}"
        "img.montage{max-width:100%}</style></head><body>",
        "<h1>synthct evaluation</h1>",
    ]
    parts += [f"<p>{html.escape(n)}</p>" for n in notes]
    parts.append("<h2>Aggregates</h2><table><tr><th>metric</th>")
    parts += [f"<th>{html.escape(s)}</th>" for s in stat_keys]
    parts.append("</tr>")
    for metric, stats in aggregates.items():
        parts.append(f"<tr><th>{html.escape(metric)}</th>" + "".join(f"<td>{_fmt(stats[s])}</td>" for s in stat_keys))
        parts.append("</tr>")
    parts.append("</table>")
    if aggregates_by_region:
        parts += _region_table(aggregates_by_region)
    if per_class:
        parts += _class_table(per_class)
    if boxplot:
        parts.append(f'<h2>MAE per region</h2><img src="{html.escape(boxplot)}" alt="MAE per region">')
    parts.append("<h2>Cases</h2><table><tr><th>case</th><th>region</th>")
    parts += [f"<th>{html.escape(k)}</th>" for k in metric_keys]
    parts.append("</tr>")
    for row in results:
        case = str(row["case_id"])
        link = f'<a href="#{html.escape(case)}">{html.escape(case)}</a>' if case in montages else html.escape(case)
        cells = "".join(f"<td>{_fmt(row[k])}</td>" for k in metric_keys)
        parts.append(f"<tr><th>{link}</th><td>{html.escape(str(row['region']))}</td>{cells}</tr>")
    parts.append("</table>")
    for row in results:
        case = str(row["case_id"])
        if case in montages:
            parts.append(f'<h3 id="{html.escape(case)}">{html.escape(case)}</h3>')
            parts.append(f'<img class="montage" src="{html.escape(montages[case])}" alt="{html.escape(case)}">')
    parts.append("</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _region_table(by_region: Mapping[str, Mapping[str, Mapping[str, float]]]) -> list[str]:
    """Mean ± std (n) of every metric per region."""
    metrics = list(dict.fromkeys(m for aggs in by_region.values() for m in aggs))
    parts = ["<h2>Per region (mean ± std, n)</h2><table><tr><th>region</th>"]
    parts += [f"<th>{html.escape(m)}</th>" for m in metrics]
    parts.append("</tr>")
    for region, aggs in by_region.items():
        cells = "".join(
            f"<td>{_fmt(aggs[m]['mean'])} ± {_fmt(aggs[m]['std'])} ({aggs[m]['count']})</td>" if m in aggs
            else "<td></td>" for m in metrics)
        parts.append(f"<tr><th>{html.escape(str(region))}</th>{cells}</tr>")
    parts.append("</table>")
    return parts


def _class_table(per_class: Sequence[Mapping[str, Any]]) -> list[str]:
    """Per TotalSegmentator label: cases, mean Dice, mean HD95 where it was found, and the cases that missed it."""
    by_label: dict[int, list[Mapping[str, Any]]] = {}
    for row in per_class:
        by_label.setdefault(int(row["label"]), []).append(row)
    parts = ["<h2>Per class (TotalSegmentator 'total' label)</h2><table><tr><th>label</th><th>cases</th>"
             "<th>mean DICE</th><th>mean HD95 [mm] (found)</th><th>missed in</th></tr>"]
    missed_any = []
    for label, rows in sorted(by_label.items()):
        hds = [float(r["hd95_mm"]) for r in rows if not r["missing"] and math.isfinite(float(r["hd95_mm"]))]
        missed = [str(r["case_id"]) for r in rows if r["missing"]]
        missed_any += [(label, c) for c in missed]
        mean_hd = _fmt(float(np.mean(hds))) if hds else "-"
        parts.append(f"<tr><th>{label}</th><td>{len(rows)}</td><td>{_fmt(float(np.mean([r['dice'] for r in rows])))}"
                     f"</td><td>{mean_hd}</td><td>{html.escape(', '.join(missed))}</td></tr>")
    parts.append("</table>")
    if missed_any:
        items = "".join(f"<li>label {label} in {html.escape(case)}</li>" for label, case in missed_any)
        parts.append(f"<h3>Missing classes ({len(missed_any)})</h3><p>Present in the CT's segmentation, absent from "
                     f"the sCT's: Dice 0 (HD95 policy in the notes above).</p><ul>{items}</ul>")
    else:
        parts.append("<p>No class of the CT segmentations is missing from the sCT segmentations.</p>")
    return parts
