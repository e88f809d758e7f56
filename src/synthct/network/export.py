"""``synthct export``: turn an nnU-Net training results folder into a synthct model folder (weights only).

Input (what ``nnUNetv2_train`` / ``synthct train`` write)::

    RESULTS/plans.json             with a ``synthct`` block: task, regions, input/target normalisation, description
    RESULTS/dataset.json
    RESULTS/fold_k/checkpoint_final.pth   (or checkpoint_best.pth): weights, optimizer state, logs, ...

Output: the model folder of :mod:`synthct.network.manifest` with ``fold_k/model.safetensors`` (network weights only,
optimizer state and logs stripped). Written into a temporary sibling folder and renamed at the end, so a failed
export leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from synthct.contracts.normalization import InputNormalization, TargetNormalization
from synthct.io.staging import staged_folder
from synthct.network.checkpoint import load_network, read_nnunet_checkpoint, save_safetensors
from synthct.network.manifest import Fold, ModelManifest, fold_order, parse_fold, write_manifest
from synthct.typing import PathLike

LOG = logging.getLogger(__name__)
WEIGHTS_NAME = "model.safetensors"


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"missing {path.name} in training results folder {path.parent}")
    return json.loads(path.read_text())


def _find_folds(results: Path, checkpoint: str) -> dict[Fold, Path]:
    """fold_0 … fold_4 and fold_all folders that hold ``checkpoint_<checkpoint>.pth``."""
    found: dict[Fold, Path] = {}
    for fold_dir in sorted(results.glob("fold_*")):
        ckpt = fold_dir / f"checkpoint_{checkpoint}.pth"
        suffix = fold_dir.name.removeprefix("fold_")
        if ckpt.is_file() and (suffix.isdigit() or suffix == "all"):
            found[parse_fold(suffix)] = ckpt
    return found


def manifest_from_plans(plans: dict[str, Any], configuration: str, mirror_axes: Any,
                        weights: dict[str, str]) -> ModelManifest:
    """Build the manifest from nnU-Net plans carrying a ``synthct`` block and the checkpoint's mirroring axes."""
    block = plans.get("synthct")
    if not isinstance(block, dict):
        raise ValueError("plans.json has no 'synthct' block: was this model trained with synthct?")
    configs = plans.get("configurations", {})
    if configuration not in configs:
        raise ValueError(f"configuration {configuration!r} not in plans.json (has {sorted(configs)})")
    config = configs[configuration]
    axes = tuple(int(a) for a in mirror_axes) if mirror_axes else ()
    return ModelManifest(
        task=block["task"],
        regions=tuple(block["regions"]),
        input_normalization=InputNormalization.from_json(block["input_normalization"]),
        target_normalization=TargetNormalization.from_json(block["target_normalization"]),
        architecture=config["architecture"],
        patch_size=tuple(config["patch_size"]),
        spacing=tuple(config["spacing"]),
        weights=weights,
        trained_with_mirroring=bool(axes),
        mirror_axes=axes,
        description=str(block.get("description", "")),
        input_channels=int(block.get("input_channels", 1)),
        extra={"configuration": configuration, "plans_name": plans.get("plans_name", "")},
    )


def export_model(
    results_dir: PathLike,
    out_dir: PathLike,
    checkpoint: str = "final",
    folds: list[Fold] | None = None,
    configuration: str = "3d_fullres",
    half: bool = False,
    overwrite: bool = False,
    licence: str | None = None,
) -> Path:
    """Export ``results_dir`` (nnU-Net results folder) to the model folder ``out_dir``; returns ``out_dir``.

    Args:
        results_dir: training results folder (plans.json, dataset.json, fold_k/checkpoint_*.pth).
        out_dir: model folder to create.
        checkpoint: "final" or "best".
        folds: folds to export, integers or "all" (default: every fold that has the checkpoint).
        configuration: nnU-Net configuration name in plans.json.
        half: store floating weights as fp16 (halves the size; loaded back as fp32).
        overwrite: replace an existing ``out_dir``.
        licence: licence of the weights, recorded in synthct.json (weights trained on SynthRAD2025 data inherit its
            CC BY-NC 4.0); None = not stated.

    Raises:
        FileNotFoundError, FileExistsError, ValueError: with the offending path or value.
    """
    results, out = Path(results_dir), Path(out_dir)
    if checkpoint not in ("final", "best"):
        raise ValueError(f"checkpoint must be 'final' or 'best', got {checkpoint!r}")
    if not results.is_dir():
        raise FileNotFoundError(f"training results folder not found: {results}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (--force) to replace it")
    plans, dataset = _read_json(results / "plans.json"), _read_json(results / "dataset.json")
    available = _find_folds(results, checkpoint)
    chosen = sorted(available, key=fold_order) if folds is None else [parse_fold(f) for f in folds]
    missing = [f for f in chosen if f not in available]
    if not chosen or missing:
        raise FileNotFoundError(f"no checkpoint_{checkpoint}.pth for folds {missing or 'any'} in {results}")
    with staged_folder(out, overwrite, "model folder") as tmp:
        mirror_axes: Any = None
        weights: dict[str, str] = {}
        for fold in chosen:
            ckpt = read_nnunet_checkpoint(available[fold])
            mirror_axes = ckpt.get("inference_allowed_mirroring_axes") if mirror_axes is None else mirror_axes
            rel = f"fold_{fold}/{WEIGHTS_NAME}"
            save_safetensors(ckpt["network_weights"], tmp / rel, half=half)
            weights[str(fold)] = rel
            LOG.info("fold %s: %s → %s (epoch %s)", fold, available[fold].name, rel, ckpt.get("current_epoch"))
        manifest = manifest_from_plans(plans, configuration, mirror_axes, weights)
        if licence is not None:
            manifest = replace(manifest, licence=licence.strip())
        else:
            LOG.info("no licence recorded (--licence); weights trained on SynthRAD2025 data inherit its CC BY-NC 4.0")
        write_manifest(manifest, tmp)
        (tmp / "plans.json").write_text(json.dumps(plans, indent=2))
        (tmp / "dataset.json").write_text(json.dumps(dataset, indent=2))
        for rel in weights.values():  # prove the export loads before publishing it
            load_network(manifest, tmp / rel)
    LOG.info("exported %d fold(s) to %s", len(chosen), out)
    return out
