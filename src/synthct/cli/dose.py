"""``synthct dose``: photon and proton plans on the CT, recomputed on sCTs, scored as SynthRAD2025 (docs/dose.md)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)

_DESCRIPTION = """\
Dose evaluation as the SynthRAD2025 test phase scores it: a photon IMRT and a proton IMPT plan are optimised on the
CT (pyRadPlan), the same plans are recomputed on each sCT, and dose MAE (% Rx, D_ct >= 90 % Rx), the DVH error and
the gamma 2 %/2 mm pass rate are reported. One case: --ct/--sct/--mask; a folder: --gt RELEASE --pred PRED.
Needs the dose extra (not in the grand-challenge image): `make dose-venv`, or
`pip install --no-deps pyradplan==0.5.0 pymedphys==0.41.0 && pip install -r requirements-dose.txt`."""


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``dose`` subcommand to ``subparsers``."""
    p = subparsers.add_parser("dose", help="photon/proton dose of sCTs vs the CT plan (pyRadPlan; docs/dose.md)",
                              description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    one = p.add_argument_group("one case")
    one.add_argument("--ct", type=Path, help="planning CT (HU)")
    one.add_argument("--sct", type=Path, nargs="+", help="one or more sCTs on the CT's grid (keyed by file stem)")
    one.add_argument("--mask", type=Path, help="body mask on the CT's grid")
    one.add_argument("--target", type=Path, help="binary target mask (wins over --structures' target)")
    folder = p.add_argument_group("folder")
    folder.add_argument("--gt", type=Path, help="ground-truth CTs: a SynthRAD2025 release folder or <id>.mha files")
    folder.add_argument("--pred", type=Path, help="folder of sCTs (<id>.mha), paired with --gt by case id")
    folder.add_argument("--masks", type=Path, help="body masks (default: the --gt release folder's mask.mha)")
    folder.add_argument("--workers", type=int, default=1, help="cases run in parallel (processes; default 1)")
    s = p.add_argument_group("structures")
    s.add_argument("--structures", type=Path, help="label map on the CT's grid (one case) or a folder of <id> label "
                   "maps (folder mode)")
    s.add_argument("--structure-names", type=Path, help='JSON {"1": "Bowel", "4": "PTV"} naming the label values')
    s.add_argument("--target-label", help="structure used as target (default: the first named PTV/CTV/GTV/ROI)")
    s.add_argument("--target-radius", type=float, default=25.0, help="radius of the automatic (synthetic) target "
                   "sphere at the body centroid when no target is given, mm (default 25)")
    pl = p.add_argument_group("plans (defaults per region: docs/dose.md)")
    pl.add_argument("--modality", nargs="+", choices=("photon", "proton"), default=["photon", "proton"])
    pl.add_argument("--region", default=None, help="HN/TH/AB (default: from the SynthRAD case id, else AB)")
    pl.add_argument("--rx", type=float, default=None, help="prescription, Gy (default 2)")
    pl.add_argument("--beams", type=int, default=None, help="photon beams, equally spaced (default HN 9, TH/AB 7)")
    pl.add_argument("--ct-resolution", type=float, default=None, help="CT resampled to at least this spacing, mm "
                    "(default 3)")
    pl.add_argument("--dose-grid", type=float, default=None, help="dose grid, mm (default 5)")
    pl.add_argument("--bixel-width", type=float, default=None, help="bixel / spot spacing, mm (default 5)")
    pl.add_argument("--max-iter", type=int, default=None, help="optimiser iterations (default 100)")
    pl.add_argument("--hlut", type=Path, default=None, help="CSV of HU,relative density/stopping power (default: "
                    "pyRadPlan's generic table)")
    pl.add_argument("--pyradplan-gpu", action="store_true", help="let pyRadPlan use a GPU array backend (opt-in; "
                    "not measured or tested by synthct; default: CPU numpy)")
    pl.add_argument("--plan-cache", type=Path, default=None, help="folder caching the CT plans' weights across runs")
    g = p.add_argument_group("gamma")
    g.add_argument("--gamma-dose", type=float, default=2.0, help="dose criterion, %% of the max (global; default 2)")
    g.add_argument("--gamma-distance", type=float, default=2.0, help="distance to agreement, mm (default 2)")
    g.add_argument("--gamma-cutoff", type=float, default=2.0, help="low-dose cut-off, %% of the max (default 2)")
    g.add_argument("--gamma-interp", type=int, default=10, help="search steps per DTA (default 10, as pymedphys)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder / redo done cases")
    p.set_defaults(func=_run)
    return p


def _settings_for(args: argparse.Namespace, region: str) -> tuple[Any, ...]:
    from synthct.dose.settings import default_settings

    overrides = {"prescription_gy": args.rx, "ct_resolution_mm": args.ct_resolution, "dose_grid_mm": args.dose_grid,
                 "bixel_width_mm": args.bixel_width, "max_iter": args.max_iter}
    return tuple(default_settings(m, args.region or region, beams=args.beams if m == "photon" else None, **overrides)
                 for m in args.modality)


def _template(args: argparse.Namespace) -> Any:
    from synthct.dose.case import DoseCase, stem_of
    from synthct.dose.gamma import GammaCriteria

    gamma = GammaCriteria(args.gamma_dose, args.gamma_distance, args.gamma_cutoff, args.gamma_interp)
    scts: dict[str, Path] = {}
    for path in args.sct or []:
        stem = stem_of(path)
        if stem in scts:
            raise ValueError(f"two sCTs share the file stem {stem!r}: {scts[stem]} and {path}; rename one")
        scts[stem] = path
    region = args.region or "AB"
    return DoseCase(case_id=stem_of(args.ct) if args.ct else "case", ct=args.ct, scts=scts, mask=args.mask,
                    settings=_settings_for(args, region), structures=args.structures,
                    structure_names=args.structure_names, target=args.target, target_label=args.target_label,
                    target_radius_mm=args.target_radius, hlut=args.hlut, gamma=gamma)


def _run(args: argparse.Namespace) -> int:
    from synthct.dose.engine import require_pyradplan

    single = args.ct is not None or args.sct is not None
    if single == (args.gt is not None or args.pred is not None):
        raise ValueError("give either one case (--ct, --sct, --mask) or a folder (--gt, --pred), not both/neither")
    needed = ("ct", "sct", "mask") if single else ("gt", "pred")
    missing = [f"--{n}" for n in needed if getattr(args, n) is None]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    require_pyradplan(gpu=args.pyradplan_gpu)  # one ERROR line with the install recipe when the extra is missing
    template = _template(args)
    if single:
        from synthct.dose.case import run_case

        run_case(template, args.out, overwrite=args.overwrite, plan_cache=args.plan_cache)
        LOG.info("dose results in %s (dose_metrics.json, doses/, qa/)", args.out)
        return 0
    from synthct.dose.folder import FolderJob, run_folder
    from synthct.paths import distributed_env

    dist = distributed_env()
    job = FolderJob(pred_dir=args.pred, gt_dir=args.gt, masks_dir=args.masks or args.gt, out_dir=args.out,
                    template=template, settings_for=lambda region: _settings_for(args, region),
                    structures_dir=args.structures, workers=args.workers, rank=dist.rank if dist else 0,
                    world_size=dist.world_size if dist else 1, overwrite=args.overwrite, plan_cache=args.plan_cache)
    summary = run_folder(job)
    for key, value in summary["mean"].items():
        LOG.info("%-28s mean %.4f (n=%d)", key, value, summary["count"])
    failed = [s for s in summary["this_run"] if s["status"] != "done"]
    return 1 if failed else 0
