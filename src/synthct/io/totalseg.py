"""TotalSegmentator ``total`` segmentation through its command-line tool, in a subprocess.

Fast (3 mm, the evaluation's model) by default; full resolution (1.5 mm, five part models) for building the AFP
extractor's training labels.

The SynthRAD2025 evaluation segments the sCT with TotalSegmentator v2, task ``total``, fast mode (model
``Dataset297_TotalSegmentator_total_3mm_1559subj``, ``challenge.md`` §9.1). ``synthct`` never imports
``totalsegmentator``: it runs ``TotalSegmentator -i IN -o OUT --ml --fast --task total`` when both the executable and
the fast ``total`` weights are on disk, and otherwise reports why not (see :func:`find_totalsegmentator`).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from synthct.paths import child_environment

LOG = logging.getLogger(__name__)

#: Folder of the fast ``total`` model inside TotalSegmentator's nnU-Net results folder.
FAST_TOTAL_DATASET: str = "Dataset297_TotalSegmentator_total_3mm_1559subj"
#: Dataset ids of the full-resolution ``total`` task (v2): organs, vertebrae, cardiac, muscles, ribs.
FULL_TOTAL_DATASET_IDS: tuple[int, ...] = (291, 292, 293, 294, 295)
#: TotalSegmentator's default nnU-Net results folder (``~/.totalsegmentator/nnunet/results``).
DEFAULT_WEIGHTS_DIR: Path = Path.home() / ".totalsegmentator" / "nnunet" / "results"


@dataclass(frozen=True)
class TotalSegmentator:
    """A runnable TotalSegmentator: the executable and the nnU-Net results folder holding the fast ``total`` model.

    Attributes:
        executable: path of the ``TotalSegmentator`` command.
        weights_dir: folder that contains :data:`FAST_TOTAL_DATASET`; passed to the subprocess as
            ``TOTALSEG_WEIGHTS_PATH`` so the tool loads exactly these weights and downloads nothing.
        timeout_s: wall-clock limit of one segmentation, seconds.
    """

    executable: Path
    weights_dir: Path
    timeout_s: float = 3600.0
    fast: bool = True

    def command(self, input_path: Path, output_path: Path) -> list[str]:
        """The command line for one image: multi-label output, task ``total`` (``--fast`` for the 3 mm model)."""
        io_args = ["-i", str(input_path), "-o", str(output_path)]
        return [str(self.executable), *io_args, "--ml", *(["--fast"] if self.fast else []), "--task", "total"]

    def segment(self, image: sitk.Image) -> np.ndarray:
        """Segment a CT (or sCT) and return its ``total`` label map on the image's grid.

        Args:
            image: CT in HU with its geometry (spacing, origin, direction).

        Returns:
            (Z, Y, X) uint8 label map, labels as in TotalSegmentator ``class_map["total"]``.

        Raises:
            RuntimeError: the tool fails, times out, writes nothing, or writes a map of another size.
        """
        with tempfile.TemporaryDirectory(prefix="synthct_totalseg_") as tmp:
            in_path, out_path = Path(tmp) / "ct.nii.gz", Path(tmp) / "seg.nii.gz"
            sitk.WriteImage(image, str(in_path))
            env = child_environment(TOTALSEG_WEIGHTS_PATH=str(self.weights_dir))
            cmd = self.command(in_path, out_path)
            LOG.debug("running %s", " ".join(cmd))
            try:
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=self.timeout_s, check=False)
            except subprocess.TimeoutExpired as exc:
                raise RuntimeError(f"TotalSegmentator timed out after {self.timeout_s} s: {' '.join(cmd)}") from exc
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout or "").strip()[-2000:]
                raise RuntimeError(f"TotalSegmentator exited with {proc.returncode}: {' '.join(cmd)}\n{tail}")
            if not out_path.is_file():
                raise RuntimeError(f"TotalSegmentator wrote no label map at {out_path}")
            labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out_path)))
        expected = image.GetSize()[::-1]
        if labels.shape != expected:
            raise RuntimeError(f"TotalSegmentator label map has shape {labels.shape}, expected {expected}")
        return labels.astype(np.uint8, copy=False)


def fast_total_weights_present(weights_dir: Path) -> bool:
    """True when ``weights_dir`` holds ``Dataset297_.../*/fold_0/checkpoint_final.pth`` (fast ``total``)."""
    return any((weights_dir / FAST_TOTAL_DATASET).glob("*/fold_0/checkpoint_final.pth"))


def missing_full_total_weights(weights_dir: Path) -> list[str]:
    """The full-resolution ``total`` datasets (``Dataset291_*`` … ``Dataset295_*``) without weights under
    ``weights_dir``, as folder patterns."""
    return [f"{weights_dir}/Dataset{i}_*/*/fold_0/checkpoint_final.pth" for i in FULL_TOTAL_DATASET_IDS
            if not any(weights_dir.glob(f"Dataset{i}_*/*/fold_0/checkpoint_final.pth"))]


def find_totalsegmentator(
    weights_dir: Path | None = None, executable: str | Path = "TotalSegmentator", fast: bool = True
) -> tuple[TotalSegmentator | None, str]:
    """Locate the TotalSegmentator command and the fast ``total`` weights.

    Args:
        weights_dir: nnU-Net results folder with :data:`FAST_TOTAL_DATASET`; default :data:`DEFAULT_WEIGHTS_DIR`.
        executable: command name (looked up on ``PATH``) or path.

    Returns:
        ``(runner, reason)``: a :class:`TotalSegmentator` and ``""`` when both are found, else ``None`` and a sentence
        saying what is missing.
    """
    weights = Path(weights_dir) if weights_dir is not None else DEFAULT_WEIGHTS_DIR
    found = shutil.which(str(executable))
    if found is None:
        return None, f"the TotalSegmentator command ({executable}) is not on PATH"
    if fast and not fast_total_weights_present(weights):
        return None, f"no fast 'total' weights ({FAST_TOTAL_DATASET}/*/fold_0/checkpoint_final.pth) under {weights}"
    missing = [] if fast else missing_full_total_weights(weights)
    if missing:
        return None, f"no full-resolution 'total' weights: missing {', '.join(missing)}"
    return TotalSegmentator(executable=Path(found), weights_dir=weights, fast=fast), ""
