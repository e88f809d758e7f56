#!/usr/bin/env python
"""AFP on real data, one command on the CPU: a demo compact extractor, a longer MRI base model, and the three-arm
fine-tune experiment of issue 14, scored on the held-out porcine slab.

    python scripts/afp_experiment.py ../shared/data              # every stage; re-run to resume
    python scripts/afp_experiment.py ../shared/data --stages evaluate --ship   # score, then ship the rule's pick
    # the three arms on three cores (each resumable), after the base model:
    for a in l1 afp afp-random; do python scripts/afp_experiment.py ../shared/data --stages arms --arms $a & done

Stages (each resumes or skips what is already done under ``--work``):

1. ``extractor`` — the demo compact extractor. The two real CT + TotalSegmentator ``total`` label-map pairs of
   ``totalsegmentator-examples`` (``example_ct_sm`` + ``example_seg``; the DICOM series + ``example_seg_dicom``,
   resampled onto the CT in physical space) are cut into a training slab and a held-out slab each
   (:data:`EXTRACTOR_SLABS`); ``synthct extractor labels --labels`` groups them into the 7 compact classes and
   ``synthct extractor train`` trains stock nnU-Net at the synthesis spacing (fold ``all``). The held-out slabs give
   Dice per group; the result is bundled as ``weights/extractor/compact-demo`` (fp16 safetensors, PROVENANCE.md).
2. ``base`` — the MRI base model (stage 1, L1): the porcine training slabs of ``make_demo_weights.py`` (z 0..27 and
   68..94; z 28..67 held out), :data:`BASE` iterations, resumable (``synthct train --continue``).
3. ``arms`` — from the base model's final checkpoint, same data, seed, iterations and learning-rate schedule:
   (a) ``l1`` — 5·L1 + 0·AFP (the control: L1 continued with the same loss scale and optimizer),
   (b) ``afp`` — 5·L1 + AFP with the trained extractor (the paper),
   (c) ``afp-random`` — 5·L1 + AFP with the same extractor architecture at a seeded random initialisation.
4. ``evaluate`` — on the held-out slab: MAE, PSNR, MS-SSIM, bone Dice and bone HD95 (bone = HU > 250 inside the body
   mask, on sCT and CT alike), the edge-sharpness ratio across the CT's bone boundary (:func:`edge_sharpness`), the
   seam ratio of mean vs Gaussian blending (:func:`seam_ratio`); a montage; ``docs/afp-experiment.md`` + ``.json``.
   The arm picked by :data:`SHIP_RULE` is exported as the MRI demo ``weights/mri/porcine-demo`` (``--ship``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from afp_report import BONE_HU, edge_sharpness, montage, seam_ratio, write_markdown  # noqa: E402
from make_demo_weights import PORCINE_HELD_OUT, PORCINE_TRAIN_SLABS, resample, write_case  # noqa: E402

LOG = logging.getLogger("afp_experiment")
STAGES = ("extractor", "base", "arms", "evaluate")
#: Synthesis grid of the MRI demo (z, y, x mm) and its patch: the extractor is trained at the same spacing.
SPACING = (2.5, 1.0, 1.0)
PATCH = (16, 96, 96)
#: CT + ``total`` label map pairs → (training slices, held-out slices), half-open axial ranges.
EXTRACTOR_SLABS = {"ts-ct-sm": ((0, 22), (22, 30)), "ts-dicom": ((0, 14), (14, 20))}
EXTRACTOR_TRAIN = {"epochs": 40, "iterations": 25, "val_iterations": 2}
EXTRACTOR_DATASET = "Dataset901_CompactAnatomyDemo"
BUNDLED_EXTRACTOR = REPO / "weights" / "extractor" / "compact-demo"
#: Stage-1 MRI base model: AdamW 1e-3 (converged faster than SGD on this tiny dataset in the CBCT demo), PolyLR.
BASE = {"epochs": 40, "iterations": 30, "optimizer": "adamw", "lr": 1e-3}
#: The three fine-tune arms: same epochs, iterations, lr (SGD + PolyLR, the fine-tune default) and seed.
ARMS = {"l1": {"afp_weight": 0.0, "init": "trained"},
        "afp": {"afp_weight": 1.0, "init": "trained"},
        "afp-random": {"afp_weight": 1.0, "init": "random"}}
FINETUNE = {"epochs": 8, "iterations": 30, "lr": 1e-3, "l1_weight": 5.0}
#: The arm shipped as the MRI demo: the best bone Dice among the arms whose MAE is within +3 HU of the control's.
SHIP_RULE = "best bone Dice among the arms with MAE <= control MAE + 3 HU"
MRI_DATASET = "510"
PLANS = "synthctResUNetPlans"


def synthct(*args: str, env: dict[str, str] | None = None) -> None:
    """Run one synthct command (a subprocess, so that each stage starts from a clean interpreter)."""
    LOG.info("$ synthct %s", " ".join(args))
    subprocess.run([sys.executable, "-m", "synthct.cli.main", *args], check=True, env=env)


def nnunet_folders(work: Path, name: str) -> dict[str, Path]:
    folders = {k: work / name / k for k in ("raw", "preprocessed", "results")}
    for path in folders.values():
        path.mkdir(parents=True, exist_ok=True)
    return folders


# ------------------------------------------------------------------------------------------------ 1. extractor
def extractor_pairs(data: Path) -> dict[str, tuple[sitk.Image, sitk.Image]]:
    """(CT in HU, ``total`` label map on the CT grid) of the two real pairs of totalsegmentator-examples."""
    ts = data / "totalsegmentator-examples"
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(ts / "example_ct_dicom")))
    dicom = reader.Execute()
    dicom_seg = sitk.Resample(sitk.ReadImage(str(ts / "example_seg_dicom.nii.gz")), dicom, sitk.Transform(),
                              sitk.sitkNearestNeighbor, 0)  # the label map's y axis is flipped: match physically
    ct_sm = sitk.ReadImage(str(ts / "example_ct_sm.nii.gz"))
    seg_sm = sitk.ReadImage(str(ts / "example_seg.nii.gz"))
    seg_sm.CopyInformation(ct_sm)  # the same voxels (PROVENANCE: example_ct_sm's origin is not example_ct's)
    return {"ts-ct-sm": (ct_sm, seg_sm), "ts-dicom": (dicom, dicom_seg)}


def extractor_slabs(data: Path, out: Path) -> tuple[Path, Path, Path]:
    """Write training CTs, their label maps and the held-out (CT, labels) slabs; returns the three folders."""
    folders = tuple(out / n for n in ("cts", "labels", "held_out"))
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    for case, (ct, seg) in extractor_pairs(data).items():
        (t0, t1), (h0, h1) = EXTRACTOR_SLABS[case]
        ct = sitk.Cast(sitk.Clamp(sitk.Cast(ct, sitk.sitkFloat32), sitk.sitkFloat32, -1024, 3071), sitk.sitkInt16)
        sitk.WriteImage(ct[:, :, t0:t1], str(folders[0] / f"{case}.mha"), useCompression=True)
        sitk.WriteImage(seg[:, :, t0:t1], str(folders[1] / f"{case}.mha"), useCompression=True)
        sitk.WriteImage(ct[:, :, h0:h1], str(folders[2] / f"{case}_ct.mha"), useCompression=True)
        sitk.WriteImage(seg[:, :, h0:h1], str(folders[2] / f"{case}_labels.mha"), useCompression=True)
    return folders


def stage_extractor(args: argparse.Namespace) -> Path:
    """Train (or find) the demo compact extractor; returns its nnU-Net results folder."""
    dirs = nnunet_folders(args.work, "extractor")
    results = dirs["results"] / EXTRACTOR_DATASET / "nnUNetTrainer__synthctExtractorPlans__3d_fullres"
    if (results / "fold_all" / "checkpoint_final.pth").is_file():
        LOG.info("extractor already trained: %s", results)
        if not BUNDLED_EXTRACTOR.is_dir():
            bundle_extractor(args, results)
        return results
    cts, labels, _ = extractor_slabs(args.data, args.work / "extractor" / "slabs")
    synthct("extractor", "labels", str(cts), str(dirs["raw"] / EXTRACTOR_DATASET), "--labels", str(labels),
            "--force")
    t = EXTRACTOR_TRAIN
    synthct("extractor", "train", EXTRACTOR_DATASET, "--spacing", *map(str, SPACING), "--fold", "all",
            "--epochs", str(t["epochs"]), "--iterations", str(t["iterations"]), "--val-iterations",
            str(t["val_iterations"]), "--patch-size", *map(str, PATCH), "--base-features", "8", "--max-features",
            "32", "--batch-size", "2", "--num-processes", "1", "--device", "cpu",
            *_path_args(dirs, "raw", "preprocessed", "results"))
    bundle_extractor(args, results)
    return results



def _segment(extractor, ct: sitk.Image) -> tuple[np.ndarray, sitk.Image]:
    """Compact labels predicted by the extractor on the whole slab (resampled to its spacing, edge-padded to its
    stride, one forward pass), on that resampled grid; with the resampled CT image (for the reference labels)."""
    import torch

    grid = resample(sitk.Cast(ct, sitk.sitkFloat32), tuple(reversed(extractor.spacing)), sitk.sitkLinear, -1024.0)
    hu = torch.from_numpy(sitk.GetArrayFromImage(grid))[None, None]
    mult = extractor.stride_multiple
    pad = [(-n) % m for n, m in zip(hu.shape[2:], mult, strict=True)]
    # edge replication: a thin held-out slab padded with air would look like the end of the body to the network
    x = torch.nn.functional.pad(extractor.normalize_hu(hu), (0, pad[2], 0, pad[1], 0, pad[0]), mode="replicate")
    with torch.no_grad():
        logits = extractor.network(x)
    shape = hu.shape[2:]
    return logits[0, :, :shape[0], :shape[1], :shape[2]].argmax(0).numpy(), grid


def extractor_dice(results: Path, held_out_dir: Path) -> dict[str, dict[str, float]]:
    """Dice per compact group on each held-out slab (and pooled over both), on the extractor's grid."""
    from synthct.contracts.compact_labels import COMPACT_GROUPS, compact_lookup, to_compact
    from synthct.losses.feature_extractor import load_feature_extractor
    from synthct.metrics.segmentation import dice
    from synthct.preprocessing.extractor_dataset import total_class_map

    extractor = load_feature_extractor(results, "all")
    lut = compact_lookup(total_class_map())
    out, pooled = {}, {g: [0, 0] for g in COMPACT_GROUPS[1:]}
    for case in EXTRACTOR_SLABS:
        pred, grid = _segment(extractor, sitk.ReadImage(str(held_out_dir / f"{case}_ct.mha")))
        ref_image = sitk.Resample(sitk.ReadImage(str(held_out_dir / f"{case}_labels.mha")), grid, sitk.Transform(),
                                  sitk.sitkNearestNeighbor, 0)
        ref = to_compact(sitk.GetArrayFromImage(ref_image), lut)
        out[case] = {}
        for index, group in enumerate(COMPACT_GROUPS[1:], start=1):
            a, b = ref == index, pred == index
            pooled[group][0] += 2 * int((a & b).sum())
            pooled[group][1] += int(a.sum() + b.sum())
            out[case][group] = dice(a, b) if a.any() else float("nan")
    out["pooled"] = {g: (v[0] / v[1] if v[1] else float("nan")) for g, v in pooled.items()}
    return out


EXTRACTOR_PROVENANCE = """# compact-demo: a DEMO AFP feature extractor

Stock nnU-Net (`nnUNetTrainer`, plans `synthctExtractorPlans`, PlainConvUNet, 8-32 features) segmenting the 7
compact groups of synthct (background, organs, cardiac, muscles, bones, ribs, vertebrae) at the MRI demo's spacing
2.5 x 1 x 1 mm, trained by `python scripts/afp_experiment.py ../shared/data --stages extractor` ({epochs} epochs x
{iterations} iterations, patch 16 x 96 x 96, fold `all`, on the 2-core CPU).

**Demo only.** Training data: two real CTs with TotalSegmentator `total` label maps from the TotalSegmentator
repository's test files (`totalsegmentator-examples` in the project's data: `example_ct_sm` + `example_seg`, axial
slices 0..21; the `example_ct_dicom` series + `example_seg_dicom`, slices 0..13). The label maps are TotalSegmentator
model outputs, not manual contours. Apache-2.0 (TotalSegmentator repository); the scans look like cases of the
TotalSegmentator datasets (CC BY 4.0; cite Wasserthal et al., Radiology: AI 2023, doi:10.1148/ryai.230024).

Dice per group on the held-out slices (`example_ct_sm` 22..29, DICOM 14..19; never trained on), on the extractor's
grid, both slabs pooled: {dice}

A real extractor is trained on hundreds of CTs (docs/afp.md); this one exists so that `synthct finetune` and the AFP
experiment (docs/afp-experiment.md) run out of the box.
"""


def bundle_extractor(args: argparse.Namespace, results: Path) -> dict:
    """Held-out Dice, then the fp16 bundle weights/extractor/compact-demo with its PROVENANCE.md."""
    from synthct.losses.feature_extractor import export_extractor

    scores = extractor_dice(results, args.work / "extractor" / "slabs" / "held_out")
    pooled = ", ".join(f"{g} {v:.3f}" for g, v in scores["pooled"].items())
    text = EXTRACTOR_PROVENANCE.format(epochs=EXTRACTOR_TRAIN["epochs"], iterations=EXTRACTOR_TRAIN["iterations"],
                                       dice=pooled)
    export_extractor(results, BUNDLED_EXTRACTOR, "all", "final", text)
    (args.work / "extractor" / "dice.json").write_text(json.dumps(scores, indent=2) + "\n")
    LOG.info("extractor held-out Dice (pooled): %s; bundled as %s", pooled, BUNDLED_EXTRACTOR)
    return scores


# ------------------------------------------------------------------------------------------------ 2. base model
def porcine_root(data: Path, root: Path) -> None:
    """The miniature SynthRAD2025 Task 1 folder of the porcine training slabs (never the held-out slab)."""
    porcine = data / "mridir-porcine-ct-mr"
    mr, ct, mask = (sitk.ReadImage(str(porcine / f"{n}.mha")) for n in ("mr", "ct", "mask"))
    for i, (z0, z1) in enumerate(PORCINE_TRAIN_SLABS, start=1):
        write_case(root / "Task1" / "HN" / f"1HNA{i:03d}", "mr.mha", mr[:, :, z0:z1], ct[:, :, z0:z1],
                   mask[:, :, z0:z1])


def _path_args(dirs: dict[str, Path], *names: str) -> list[str]:
    return [a for n in names for a in (f"--{n}", str(dirs[n]))]


def mri_results(args: argparse.Namespace, trainer: str = "SynthCTTrainerL1", results: Path | None = None) -> Path:
    """The results folder of ``trainer`` on the porcine dataset (under ``results``, default the base run's)."""
    results = results or nnunet_folders(args.work, "mri")["results"]
    return results / "Dataset510_SynthRAD2025Task1" / f"{trainer}__{PLANS}__3d_fullres"


def stage_base(args: argparse.Namespace) -> Path:
    """Convert, plan and preprocess once, then train (resuming) the stage-1 base model; returns its fold folder."""
    dirs = nnunet_folders(args.work, "mri")
    fold = mri_results(args) / "fold_all"
    if (fold / "checkpoint_final.pth").is_file():
        LOG.info("base model already trained: %s", fold)
        return fold
    if not any(dirs["preprocessed"].glob("Dataset510_*/synthctResUNetPlans_3d_fullres")):
        root = args.work / "mri" / "synthrad"
        porcine_root(args.data, root)
        synthct("convert", str(root), str(dirs["raw"]), "--task", "1", "--region", "all", "--force", "--workers",
                "1")
        synthct("plan", MRI_DATASET, "--arch", "resunet", "--patch-size", *map(str, PATCH), "--batch-size", "2",
                "--base-features", "8", "--max-features", "32", "--num-processes", "1",
                *_path_args(dirs, "raw", "preprocessed"))
        synthct("preprocess", MRI_DATASET, "--num-processes", "1", *_path_args(dirs, "raw", "preprocessed"))
    synthct("train", MRI_DATASET, "all", "--epochs", str(BASE["epochs"]), "--iterations", str(BASE["iterations"]),
            "--optimizer", BASE["optimizer"], "--lr", str(BASE["lr"]), "--val-iterations", "2", "--save-every", "5",
            "--no-validation", "--device", "cpu", "--continue", *_path_args(dirs, "preprocessed", "results"))
    return fold



# ------------------------------------------------------------------------------------------------------ 3. arms


def repo_relative(path: Path, work: Path) -> str:
    """``path`` as the report stores it: relative to the repository, else to the work folder (``$WORK/...``), never
    an absolute path of this machine."""
    path = path.resolve()
    for base, prefix in ((REPO, ""), (work.resolve(), "$WORK/")):
        if path.is_relative_to(base):
            return prefix + path.relative_to(base).as_posix()
    raise ValueError(f"{path} is neither under the repository {REPO} nor under the work folder {work}")


def extractor_folder(args: argparse.Namespace) -> Path:
    """The bundled extractor if it exists, else the trained results folder (stage ``extractor``)."""
    return BUNDLED_EXTRACTOR if BUNDLED_EXTRACTOR.is_dir() else stage_extractor(args)


def arm_fold(args: argparse.Namespace, arm: str) -> Path:
    return mri_results(args, "SynthCTTrainerAFP", args.work / "arms" / arm) / "fold_all"


def stage_arms(args: argparse.Namespace) -> dict[str, Path]:
    """Fine-tune the three arms from the base model's final checkpoint (each resumable); returns their folds."""
    init = stage_base(args) / "checkpoint_final.pth"
    extractor = extractor_folder(args)
    dirs = nnunet_folders(args.work, "mri")
    folds = {}
    for arm, spec in ARMS.items():
        if arm not in args.arms:
            continue
        fold = arm_fold(args, arm)
        folds[arm] = fold
        if (fold / "checkpoint_final.pth").is_file():
            LOG.info("arm %s already trained: %s", arm, fold)
            continue
        results = args.work / "arms" / arm
        results.mkdir(parents=True, exist_ok=True)
        f = FINETUNE
        synthct("finetune", MRI_DATASET, "all", "--init", str(init), "--extractor", str(extractor),
                "--extractor-init", spec["init"], "--afp-weight", str(spec["afp_weight"]), "--l1-weight",
                str(f["l1_weight"]), "--epochs", str(f["epochs"]), "--iterations", str(f["iterations"]), "--lr",
                str(f["lr"]), "--val-iterations", "2", "--save-every", "2", "--seed", "0", "--no-validation",
                "--device", "cpu", "--continue", "--preprocessed", str(dirs["preprocessed"]), "--results",
                str(results))
    return folds


# -------------------------------------------------------------------------------------------------- 4. evaluate
def held_out(data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float, float]]:
    """(MR, CT, body mask, spacing z/y/x mm) of the held-out porcine slab (z 28..67 = samples/porcine)."""
    porcine = data / "mridir-porcine-ct-mr"
    z0, z1 = PORCINE_HELD_OUT
    images = [sitk.ReadImage(str(porcine / f"{n}.mha"))[:, :, z0:z1] for n in ("mr", "ct", "mask")]
    arrays = [sitk.GetArrayFromImage(im) for im in images]
    return arrays[0], arrays[1].astype(np.float32), arrays[2] > 0, tuple(reversed(images[0].GetSpacing()))


def export_model(fold: Path, out: Path) -> Path:
    if not (out / "synthct.json").is_file():
        synthct("export", str(fold.parent), str(out), "--fp16", "--force")
    return out


def score(model: Path, mr: np.ndarray, ct: np.ndarray, body: np.ndarray, spacing: tuple[float, float, float],
          blend: str = "mean") -> tuple[dict[str, float], np.ndarray]:
    """Held-out metrics of one model and its sCT (HU)."""
    from synthct.inference.predictor import InferenceOptions, SyntheticCTPredictor
    from synthct.metrics import image_metrics
    from synthct.metrics.segmentation import bone_dice, hd95

    sct = SyntheticCTPredictor(model, InferenceOptions(device="cpu", progress=False, blend=blend)).predict(
        mr, body.astype(np.uint8), spacing)
    row = image_metrics(ct, sct, mask=body)
    row["bone_dice"] = bone_dice(ct, sct, mask=body, threshold_hu=BONE_HU)
    row["bone_hd95_mm"] = hd95((ct > BONE_HU) & body, (sct > BONE_HU) & body, spacing_mm=spacing)
    row["edge_sharpness"] = edge_sharpness(ct, sct, body, spacing)
    return row, sct


def pick(rows: dict[str, dict[str, float]]) -> str:
    """The arm of :data:`SHIP_RULE`."""
    limit = rows["l1"]["mae"] + 3.0
    eligible = [a for a in ARMS if rows[a]["mae"] <= limit]
    return max(eligible, key=lambda a: rows[a]["bone_dice"])



def stage_evaluate(args: argparse.Namespace) -> dict:
    """Score the base model and the three arms on the held-out slab; write docs/afp-experiment.{md,json}."""
    mr, ct, body, spacing = held_out(args.data)
    models = {"base (stage 1)": export_model(stage_base(args), args.work / "models" / "base")}
    args.arms = list(ARMS)
    folds = stage_arms(args)
    for arm, fold in folds.items():
        models[arm] = export_model(fold, args.work / "models" / arm)
    rows, scts = {}, {}
    for name, model in models.items():
        rows[name], scts[name] = score(model, mr, ct, body, spacing)
        LOG.info("%-16s %s", name, {k: round(v, 4) for k, v in rows[name].items()})
    chosen = pick(rows)
    tile = tuple(json.loads((models[chosen] / "synthct.json").read_text())["patch_size"])
    gaussian = score(models[chosen], mr, ct, body, spacing, blend="gaussian")
    seams = {"mean": seam_ratio(scts[chosen], ct, body, tile, 0.3),
             "gaussian": seam_ratio(gaussian[1], ct, body, tile, 0.3), "gaussian_metrics": gaussian[0]}
    picture = montage(REPO / "docs" / "afp-experiment.png", ct, {k: scts[k] for k in models}, body, spacing)
    report = {"rows": rows, "chosen": chosen, "rule": SHIP_RULE, "seams": seams, "bone_hu": BONE_HU,
              "base": BASE, "finetune": FINETUNE, "arms": ARMS,
              "extractor": repo_relative(extractor_folder(args), args.work),
              "montage": str(picture.relative_to(REPO))}
    (REPO / "docs" / "afp-experiment.json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report)
    if args.ship:
        ship(args, models[chosen], chosen, folds.get(chosen, Path()))
    return report


def train_seconds(fold: Path) -> float:
    """Wall time of a training run from its checkpoint's epoch timestamps (first start to last end)."""
    from synthct.network.checkpoint import read_nnunet_checkpoint

    logging_ = read_nnunet_checkpoint(fold / "checkpoint_final.pth")["logging"]
    return float(logging_["epoch_end_timestamps"][-1] - logging_["epoch_start_timestamps"][0])


def ship(args: argparse.Namespace, model: Path, arm: str, fold: Path) -> None:
    """Copy the chosen arm to weights/mri/porcine-demo with its description (routing is unchanged) and refresh the
    mri rows of weights/DEMO_RESULTS (make_demo_weights' evaluation: model, identity, linear map)."""
    from dataclasses import replace

    from make_demo_weights import DESCRIPTIONS, evaluate, write_results

    from synthct.network.manifest import read_manifest, write_manifest

    out = REPO / "weights" / "mri" / "porcine-demo"
    staging = out.with_name(".porcine-demo.new")
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(model, staging)
    stage = ("Stage 1 (L1) of scripts/afp_experiment.py." if arm == "base (stage 1)" else
             f"Stage 1 (L1) + fine-tune arm '{arm}' of scripts/afp_experiment.py.")
    write_manifest(replace(read_manifest(staging), description=f"{DESCRIPTIONS['mri']} {stage}"), staging)
    shutil.rmtree(out)
    staging.rename(out)
    seconds = train_seconds(stage_base(args)) + (0.0 if arm == "base (stage 1)" else train_seconds(fold))
    porcine = args.data / "mridir-porcine-ct-mr"
    z0, z1 = PORCINE_HELD_OUT
    held = tuple(sitk.ReadImage(str(porcine / f"{n}.mha"))[:, :, z0:z1] for n in ("mr", "ct", "mask"))
    cases = sorted((args.work / "mri" / "synthrad" / "Task1").glob("*/*"))
    write_results({"mri": evaluate("mri", out, held, cases)}, {"mri": seconds})
    LOG.info("shipped %s as %s (training %.0f s)", arm, out, seconds)

# ------------------------------------------------------------------------------------------------------ driver
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", type=Path, help="the project's data folder (shared/data)")
    p.add_argument("--work", type=Path, default=REPO / "build" / "afp-experiment", help="scratch folder (resumable)")
    p.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    p.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS),
                   help="arms to train in this process (run one process per arm to use several cores)")
    p.add_argument("--ship", action="store_true", help="export the arm the rule picks as weights/mri/porcine-demo")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("nnUNet_n_proc_DA", "0")  # augmentation in the main process (2-core machines)
    args.work.mkdir(parents=True, exist_ok=True)
    for stage in args.stages:
        t0 = time.perf_counter()
        globals()[f"stage_{stage.replace('-', '_')}"](args)
        LOG.info("stage %s: %.0f s", stage, time.perf_counter() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
