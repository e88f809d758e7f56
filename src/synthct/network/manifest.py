"""``synthct.json``: the manifest of a model folder, the contract between training and inference.

A model folder is an nnU-Net results folder plus this manifest::

    MODEL/
    ├── synthct.json          this manifest (format_version, task, regions, normalisation, network, tiles, folds)
    ├── plans.json            nnU-Net plans the model was trained with (kept for provenance and re-training)
    ├── dataset.json          nnU-Net dataset description
    └── fold_0/
        └── model.safetensors network weights only (fp32 or fp16), or a stock nnU-Net checkpoint_*.pth

Change the format only deliberately and bump :data:`FORMAT_VERSION`; loaders reject versions they do not know.
Optional keys added later without a bump (old folders lack them and load with the default; readers of format 1
ignore keys they do not know): ``licence`` (free text, ``synthct export --licence``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthct import __version__
from synthct.contracts import synthrad
from synthct.contracts.normalization import InputNormalization, TargetNormalization
from synthct.typing import PathLike

FORMAT_VERSION = 1
MANIFEST_NAME = "synthct.json"
#: A fold: an index of nnU-Net's 5-fold split, or "all" (trained on every case).
Fold = int | str


def parse_fold(value: object) -> Fold:
    """``3``/``"3"`` → 3, ``"all"`` → "all"; anything else raises ValueError quoting it."""
    if value == "all":
        return "all"
    try:
        fold = int(str(value))
    except ValueError:
        fold = -1
    if fold < 0:
        raise ValueError(f"fold must be a non-negative integer or 'all', got {value!r}")
    return fold


def fold_order(fold: Fold) -> tuple[int, int]:
    """Sort key: numbered folds first, in order, then "all"."""
    return (1, 0) if fold == "all" else (0, int(fold))


@dataclass(frozen=True)
class ModelManifest:
    """Everything inference needs to know about a model folder.

    Attributes:
        task: "mri" (Task 1) or "cbct" (Task 2).
        regions: anatomical regions the model was trained on, a subset of ``synthrad.region_codes()``.
        input_normalization: how the input channel is normalised.
        target_normalization: how HU map to the network's output units.
        architecture: nnU-Net architecture block (network_class_name, arch_kwargs, _kw_requires_import).
        patch_size: (Z, Y, X) tile size in voxels.
        spacing: (Z, Y, X) voxel spacing in mm the model was trained at.
        weights: fold number (as str) → weights file relative to the folder.
        trained_with_mirroring: whether mirror augmentation was used (mirroring TTA allowed only then).
        mirror_axes: spatial axes (0 = Z, 1 = Y, 2 = X) mirrored in training.
        description: free text: what the model was trained on (shown to users).
        licence: free text: the licence of the weights (e.g. "CC BY-NC 4.0" for weights trained on SynthRAD2025
            data, which inherit the data's licence); "" = not stated.
        input_channels: number of input channels (1).
        synthct_version: package version that wrote the manifest.
        format_version: manifest format version.
    """

    task: str
    regions: tuple[str, ...]
    input_normalization: InputNormalization
    target_normalization: TargetNormalization
    architecture: dict[str, Any]
    patch_size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    weights: dict[str, str]
    trained_with_mirroring: bool = False
    mirror_axes: tuple[int, ...] = ()
    description: str = ""
    licence: str = ""
    input_channels: int = 1
    synthct_version: str = __version__
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        tasks, regions = synthrad.task_names(), synthrad.region_codes()
        if self.task not in tasks:
            raise ValueError(f"task must be one of {tasks}, got {self.task!r}")
        bad = [r for r in self.regions if r not in regions]
        if bad or not self.regions:
            raise ValueError(f"regions must be a non-empty subset of {regions}, got {list(self.regions)}")
        if len(self.patch_size) != 3 or min(self.patch_size) <= 0:
            raise ValueError(f"patch_size must be 3 positive ints (Z, Y, X), got {self.patch_size}")
        if len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise ValueError(f"spacing must be 3 positive numbers (Z, Y, X) in mm, got {self.spacing}")
        if not self.weights:
            raise ValueError("a model folder needs at least one fold in 'weights'")
        for key in self.weights:
            parse_fold(key)
        if self.mirror_axes and not self.trained_with_mirroring:
            raise ValueError(f"mirror_axes {self.mirror_axes} given but trained_with_mirroring is false")

    @property
    def folds(self) -> list[Fold]:
        return sorted((parse_fold(k) for k in self.weights), key=fold_order)

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "synthct_version": self.synthct_version,
            "task": self.task,
            "regions": list(self.regions),
            "description": self.description,
            "licence": self.licence,
            "input_channels": self.input_channels,
            "input_normalization": self.input_normalization.to_json(),
            "target_normalization": self.target_normalization.to_json(),
            "architecture": self.architecture,
            "patch_size": list(self.patch_size),
            "spacing": list(self.spacing),
            "folds": self.folds,
            "weights": {str(f): self.weights[str(f)] for f in self.folds},
            "trained_with_mirroring": self.trained_with_mirroring,
            "mirror_axes": list(self.mirror_axes),
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelManifest:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"unsupported synthct.json format_version {version!r}; this synthct reads "
                             f"{FORMAT_VERSION}")
        try:
            return cls(
                task=data["task"],
                regions=tuple(data["regions"]),
                input_normalization=InputNormalization.from_json(data["input_normalization"]),
                target_normalization=TargetNormalization.from_json(data["target_normalization"]),
                architecture=data["architecture"],
                patch_size=tuple(int(v) for v in data["patch_size"]),  # type: ignore[arg-type]  # length: post_init
                spacing=tuple(float(v) for v in data["spacing"]),  # type: ignore[arg-type]  # length: post_init
                weights={str(k): str(v) for k, v in data["weights"].items()},
                trained_with_mirroring=bool(data.get("trained_with_mirroring", False)),
                mirror_axes=tuple(int(a) for a in data.get("mirror_axes", ())),
                description=str(data.get("description", "")),
                licence=str(data.get("licence", "")),
                input_channels=int(data.get("input_channels", 1)),
                synthct_version=str(data.get("synthct_version", "unknown")),
                extra=dict(data.get("extra", {})),
            )
        except KeyError as exc:
            raise ValueError(f"synthct.json lacks the required key {exc.args[0]!r}") from None


def read_manifest(model_dir: PathLike) -> ModelManifest:
    """Read ``MODEL/synthct.json``. Raises FileNotFoundError (missing) or ValueError (malformed)."""
    path = Path(model_dir) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {MANIFEST_NAME} in model folder {Path(model_dir)}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    try:
        return ModelManifest.from_json(data)
    except ValueError as exc:  # e.g. an unknown input normalisation scheme: one error that names the file
        raise ValueError(f"{path}: {exc}") from None


def write_manifest(manifest: ModelManifest, model_dir: PathLike) -> Path:
    path = Path(model_dir) / MANIFEST_NAME
    path.write_text(json.dumps(manifest.to_json(), indent=2) + "\n")
    return path
