"""Tabulate ``$OUT/results.jsonl`` (gpu_inference.py, gpu_train_step.py) into ``$OUT/summary.md`` and project the T4
budget of issue 16 from the measured per-tile FLOP/s.

T4 projection: a tile's FLOPs (counted) over ``e × 65 TFLOP/s``, where ``e`` is the fraction of the H200's 990 TFLOP/s
peak that the tile forward reached in this run (best switch set whose output matched the eager one, and the eager
engine): the assumption is that the network runs at the same fraction of the T4's peak (the T4 has less memory
bandwidth per FLOP, so this is optimistic). Whole-case time = tiles × folds × per-tile + the case's non-tile time
measured here + the container start-up ``--startup-s`` (an assumption, not measured). The grand-challenge job limit
is 20 minutes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gpu_common import H200_PEAK_TFLOPS, T4_PEAK_TFLOPS, add_common_args, body_mask, n_tiles, read_results, sizes

JOB_LIMIT_S = 20 * 60
EQUAL_HU = 1.0  # a switch "matches" when its tile output is within this of the eager fp16 output (fp16 noise)


def table(rows: list[dict], cols: list[str]) -> list[str]:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(_cell(r.get(c)) for c in cols) + " |")
    return out


def _cell(v) -> str:  # noqa: ANN001
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "/")


def t4_projection(results: list[dict], s, startup_s: float, dry: bool) -> list[str]:
    flops = next((r for r in results if r["kind"] == "flops"), None)
    tiles = [r for r in results if r["kind"] == "tile" and "per_tile_ms" in r and not r["variant"].startswith("stock")]
    if flops is None or not tiles:
        return ["No per-tile measurement in the log: no T4 projection."]
    tflop = flops["tflop_per_tile"]
    eager = next((r for r in tiles if r["variant"] == "eager"), tiles[0])
    ok = [r for r in tiles if r.get("err_vs_eager_hu") is None or r["err_vs_eager_hu"] <= EQUAL_HU]
    best = max(ok, key=lambda r: r["achieved_tflops"])
    cases = [r for r in results if r["kind"] == "case" and r.get("case") == "large"]
    overhead = min((r["total_s"] - r["folds"] * r["tiles_per_fold"] * best["per_tile_ms"] / 1e3 for r in cases),
                   default=0.0)
    overhead = max(overhead, 0.0)
    mask = body_mask(s.large)
    lines = [f"Tile: {tflop:.4g} TFLOP (counted). T4 peak used: {T4_PEAK_TFLOPS:g} TFLOP/s fp16 (NVIDIA T4 datasheet);"
             f" H200 peak used: {H200_PEAK_TFLOPS:g} TFLOP/s.",
             f"Measured fraction of the H200 peak: eager {eager['pct_peak']:.1f} %, best matching switch set "
             f"'{best['variant']}' {best['pct_peak']:.1f} %.",
             f"Large case {s.large}: non-tile time measured here {overhead:.1f} s (load, normalise, stitch, write; "
             f"H200 host); container start-up assumed {startup_s:g} s.", "",
             "| efficiency from | step | folds | tiles per fold | T4 tile time [s] | projected job [s] | fits 20 min |",
             "|---|---|---|---|---|---|---|"]
    for label, row in (("eager", eager), (best["variant"], best)):
        per_tile = tflop / (row["pct_peak"] / 100 * T4_PEAK_TFLOPS)
        for step in (0.3, 0.5):
            count = n_tiles(s.large, s.patch, step, mask)
            for folds in (5, 3, 1):
                total = startup_s + overhead + count * folds * per_tile
                lines.append(f"| {label} | {step} | {folds} | {count} | {per_tile:.3f} | {total:.0f} | "
                             f"{'yes' if total <= JOB_LIMIT_S else 'NO'} |")
    if dry:
        lines.append("\nDRY RUN on the CPU: the 'fractions of peak' are CPU numbers against a GPU peak; the projection "
                     "only shows the computation, not a budget.")
    return lines


def summary(out: Path, startup_s: float) -> str:
    results = read_results(out)
    dry = any(r.get("dry_run") for r in results)
    s = sizes(dry)
    env = next((r for r in results if r["kind"] == "environment"), {})
    lines = [f"# GPU check summary ({'CPU DRY RUN, tiny sizes' if dry else env.get('name', '?')}, torch "
             f"{env.get('torch', '?')})", "", f"{len(results)} records in results.jsonl", ""]
    for phase, kind, cols in (
        ("tiles", "tile", ["variant", "batch", "per_tile_ms", "achieved_tflops", "pct_peak", "first_batch_s",
                           "prepare_s", "err_vs_eager_hu", "err_vs_fp32_hu", "peak_GiB", "refused", "failed"]),
        ("tiles-compile", "tile", ["variant", "per_tile_ms", "achieved_tflops", "pct_peak", "first_batch_s",
                                   "prepare_s", "err_vs_eager_hu", "err_vs_fp32_hu", "refused", "failed"]),
        ("window", "window", ["variant", "seconds", "tiles", "speedup_vs_stock", "speedup_vs_eager", "prepare_s",
                              "err_vs_fp32_hu", "diff_vs_eager_hu", "peak_GiB", "refused", "failed"]),
        ("case", "resample", ["shape_in", "shape_out", "cpu_s", "device_s_incl_transfers", "max_abs_diff"]),
        ("case", "case", ["case", "config", "shape", "folds", "tiles_per_fold", "load_s", "predict_s", "write_s",
                          "total_s", "peak_GiB", "write"]),
        ("train-eager", "train", ["trainer", "step_s", "first_step_s", "val_forward_s", "peak_GiB",
                                  "h_per_fold_1000ep", "h_per_fold_1500ep", "refused", "failed"]),
        ("train-compile", "train", ["trainer", "step_s", "first_step_s", "val_forward_s", "peak_GiB",
                                    "h_per_fold_1000ep", "h_per_fold_1500ep", "refused", "failed"]),
    ):
        rows = [r for r in results if r["phase"] == phase and r["kind"] == kind]
        lines += [f"## {phase}: {kind}", ""] + (table(rows, cols) if rows else ["(no records: not run, or cut by its "
                                                                                 "time box)"]) + [""]
    flops = [r for r in results if r["kind"] == "flops"]
    if flops:
        lines += [f"FLOPs per tile (torch.utils.flop_counter): {flops[0]['tflop_per_tile']:.4g} TFLOP, "
                  f"{flops[0]['params_M']:.4g} M parameters, patch {flops[0]['patch']}", ""]
    lines += ["## T4 budget (projection)", ""] + t4_projection(results, s, startup_s, dry)
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--startup-s", type=float, default=120.0, help="assumed container start-up on grand-challenge")
    add_common_args(parser)
    args = parser.parse_args()
    text = summary(args.out, args.startup_s)
    (args.out / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
