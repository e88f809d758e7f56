"""``synthct extractor labels``: an nnU-Net raw segmentation dataset for the compact AFP feature extractor.

For every CT in a folder: TotalSegmentator ``total`` (subprocess; weights must already be on disk) or a label map the
user already has → the 7 compact groups (:mod:`synthct.contracts.compact_labels`) → ``imagesTr/<case>_0000.nii.gz``
(CT clipped to [-1024, 3071] HU) and ``labelsTr/<case>.nii.gz`` plus ``dataset.json`` (channel "CT", 7 labels),
ready for stock nnU-Net planning and training (``synthct extractor train``).
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from synthct import HU_MAX, HU_MIN
from synthct.contracts.compact_labels import COMPACT_GROUPS, compact_lookup, to_compact
from synthct.io.staging import staged_folder
from synthct.io.totalseg import TotalSegmentator
from synthct.typing import PathLike

LOG = logging.getLogger(__name__)
CT_SUFFIXES = (".mha", ".nii.gz", ".nii", ".nrrd")


def total_class_map() -> dict[int, str]:
    """TotalSegmentator v2 ``total`` class names by label (117 classes; shipped with synthct)."""
    text = resources.files("synthct.contracts").joinpath("totalseg_total_classes.json").read_text()
    return {int(k): v for k, v in json.loads(text)["total"].items()}


def _case_id(path: Path) -> str:
    for suffix in CT_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    raise ValueError(f"{path}: not a CT image file ({CT_SUFFIXES})")


def _labels_for(case: str, ct: sitk.Image, labels_dir: Path | None, runner: TotalSegmentator | None) -> np.ndarray:
    if labels_dir is not None:
        matches = [labels_dir / f"{case}{s}" for s in CT_SUFFIXES if (labels_dir / f"{case}{s}").is_file()]
        if not matches:
            raise FileNotFoundError(f"no label map for case {case!r} in {labels_dir}")
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(matches[0])))
        if labels.shape != ct.GetSize()[::-1]:
            raise ValueError(f"{matches[0]}: label map shape {labels.shape} differs from the CT {ct.GetSize()[::-1]}")
        return labels
    assert runner is not None
    return runner.segment(ct)


def build_extractor_dataset(ct_dir: PathLike, out_dir: PathLike, runner: TotalSegmentator | None = None,
                            labels_dir: PathLike | None = None, progress: bool = True,
                            overwrite: bool = False) -> Path:
    """Write the raw dataset for the compact extractor; returns ``out_dir``.

    Args:
        ct_dir: folder of CTs in HU (.mha, .nii.gz, .nii, .nrrd); the file stem is the case id.
        out_dir: nnU-Net raw dataset folder to create (e.g. ``$nnUNet_raw/Dataset901_CompactAnatomy``).
        runner: TotalSegmentator to segment each CT (needed unless ``labels_dir`` is given).
        labels_dir: existing TotalSegmentator ``total`` label maps named like the CTs.
        progress: tqdm progress bar over cases.
        overwrite: replace an existing ``out_dir`` (else FileExistsError, before anything is read): a rerun never
            merges with the cases of an earlier dataset, and a failed run leaves no folder behind.
    """
    ct_dir, out = Path(ct_dir), Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"extractor dataset folder {out} exists; pass --force to replace it")
    if runner is None and labels_dir is None:
        raise ValueError("either a TotalSegmentator runner or a folder of existing label maps is required")
    cts = sorted(p for p in ct_dir.iterdir() if p.name.endswith(CT_SUFFIXES)) if ct_dir.is_dir() else []
    if not cts:
        raise FileNotFoundError(f"no CT images ({CT_SUFFIXES}) in {ct_dir}")
    lut = compact_lookup(total_class_map())
    with staged_folder(out, overwrite, "extractor dataset folder") as tmp:
        counts = _write_cases(cts, tmp, lut, None if labels_dir is None else Path(labels_dir), runner, progress)
        dataset = {"channel_names": {"0": "CT"}, "labels": {name: i for i, name in enumerate(COMPACT_GROUPS)},
                   "numTraining": len(cts), "file_ending": ".nii.gz",
                   "description": "compact anatomy (TotalSegmentator total → 7 groups) for the synthct AFP extractor"}
        (tmp / "dataset.json").write_text(json.dumps(dataset, indent=2))
    LOG.info("%d cases; voxels per group: %s", len(cts),
             ", ".join(f"{n} {c}" for n, c in zip(COMPACT_GROUPS, counts.tolist(), strict=True)))
    return out


def _write_cases(cts: list[Path], out: Path, lut: np.ndarray, labels_dir: Path | None,
                 runner: TotalSegmentator | None, progress: bool) -> np.ndarray:
    """imagesTr/ and labelsTr/ of every CT in ``out``; returns the voxel count per compact group."""
    (out / "imagesTr").mkdir()
    (out / "labelsTr").mkdir()
    counts = np.zeros(len(COMPACT_GROUPS), dtype=np.int64)
    for path in tqdm(cts, desc="extractor labels", unit="case", disable=None if progress else True):
        case = _case_id(path)
        ct = sitk.ReadImage(str(path))
        compact = to_compact(_labels_for(case, ct, labels_dir, runner), lut)
        counts += np.bincount(compact.ravel(), minlength=len(COMPACT_GROUPS))
        image = sitk.Clamp(sitk.Cast(ct, sitk.sitkFloat32), sitk.sitkFloat32, HU_MIN, HU_MAX)
        sitk.WriteImage(sitk.Cast(image, sitk.sitkInt16), str(out / "imagesTr" / f"{case}_0000.nii.gz"))
        seg = sitk.GetImageFromArray(compact)
        seg.CopyInformation(ct)
        sitk.WriteImage(seg, str(out / "labelsTr" / f"{case}.nii.gz"))
    return counts
