#!/usr/bin/env python
"""Derive the small sample volumes committed under ``samples/`` from the real data in ``../shared/data``.

Run once from the repository root (the output is committed, so users and CI never need ``../shared``)::

    python scripts/make_samples.py [--source ../shared/data] [--out samples]

Each sample folder receives the derived volumes, a PROVENANCE.md (the source's own provenance followed by what this
script did) and the source licence. Deterministic: running it twice gives byte-identical images.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

import SimpleITK as sitk

LOG = logging.getLogger("make_samples")

#: Axial slices (z indices, half-open) of the porcine volume kept in the sample: the centre of the long bone.
PORCINE_Z = (28, 68)


def _write(image: sitk.Image, path: Path) -> None:
    sitk.WriteImage(image, str(path), useCompression=True)
    LOG.info("wrote %s (%d bytes)", path, path.stat().st_size)


def _provenance(src: Path, dst: Path, derived: str) -> None:
    text = (src / "PROVENANCE.md").read_text()
    dst.joinpath("PROVENANCE.md").write_text(
        f"# Sample derived by scripts/make_samples.py\n\n{derived.strip()}\n\n"
        f"---\n\nProvenance of the source folder (`shared/data/{src.name}`), verbatim:\n\n{text}"
    )
    for lic in src.glob("LICENSE*"):
        shutil.copyfile(lic, dst / lic.name)


def porcine(source: Path, out: Path) -> None:
    """Real paired porcine MR + CT + body mask, cropped to 40 axial slices (147 x 186 x 40 voxels, 1 x 1 x 2.5 mm)."""
    src, dst = source / "mridir-porcine-ct-mr", out / "porcine"
    dst.mkdir(parents=True, exist_ok=True)
    z0, z1 = PORCINE_Z
    for name in ("mr", "ct", "mask"):
        image = sitk.ReadImage(str(src / f"{name}.mha"))
        _write(image[:, :, z0:z1], dst / f"{name}.mha")
    _provenance(src, dst, f"""
Files `mr.mha`, `ct.mha`, `mask.mha`: axial slices z = {z0}..{z1 - 1} (0-based, {z1 - z0} slices) of the files of the
same names, cut with SimpleITK slicing (origin moves with the crop; spacing, direction and voxel values unchanged),
written as compressed MetaImage. Licence: CC BY 4.0 (see LICENSE file); cite Ger et al. 2018 and TCIA.""")


def totalsegmentator(source: Path, out: Path) -> None:
    """Real abdominal CT slab and its TotalSegmentator ``total`` label map, plus the class map (byte copies)."""
    src, dst = source / "totalsegmentator-examples", out / "totalsegmentator"
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("example_ct_sm.nii.gz", "example_seg.nii.gz", "totalsegmentator_class_map.json"):
        shutil.copyfile(src / name, dst / name)
    _provenance(src, dst, """
Files `example_ct_sm.nii.gz`, `example_seg.nii.gz`, `totalsegmentator_class_map.json`: byte-identical copies.
Licence: Apache-2.0 (see LICENSE file); cite Wasserthal et al. 2023.""")


def openkbp(source: Path, out: Path) -> None:
    """Real head-and-neck CT (OpenKBP pt_2) and its body mask (byte copies), for CBCT simulation and CT metrics."""
    src, dst = source / "openkbp-hn-ct", out / "openkbp_hn"
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("ct.nii.gz", "mask.nii.gz"):
        shutil.copyfile(src / "pt_2" / name, dst / name)
    _provenance(src, dst, """
Files `ct.nii.gz`, `mask.nii.gz`: byte-identical copies of `pt_2/ct.nii.gz` and `pt_2/mask.nii.gz`.
Licence: MIT for the repository (see LICENSE file); images TCIA-derived, cite Babier et al. 2021.""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--source", type=Path, default=root.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=root / "samples")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.source.is_dir():
        raise SystemExit(f"source data folder not found: {args.source}")
    for derive in (porcine, totalsegmentator, openkbp):
        derive(args.source, args.out)


if __name__ == "__main__":
    main()
