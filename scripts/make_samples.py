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

import numpy as np
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


#: Real CBCT pair: CBCT slices of ``cbct_CB02_aligned_resampled`` that lie on the CT's z range start at this index.
PANCREAS_CBCT_Z0 = 26
#: Release clip range of CT and CBCT (SynthRAD ``clip_data.py``).
HU_CLIP = (-1024, 3071)
#: In-plane margin (voxels) kept around the union of the per-slice FOV discs.
PANCREAS_MARGIN = 2


def pancreas_cbct(source: Path, out: Path) -> None:
    """Real planning CT + real CBCT of one patient as a SynthRAD2025 Task 2 "Abdomen" pair (CT grid, int16 HU).

    Steps (challenge.md §11): overlap of the two z ranges; per-slice circular CBCT FOV from the radial profile;
    cone correction (slices with FOV area > 95 % of the largest); clip to [-1024, 3071]; body outline from the CBCT
    (threshold + 2 openings + largest component + closing + hole filling + 10 mm in-plane dilation, ∩ FOV); CT and CBCT
    set to -1000 outside the FOV; in-plane crop to the FOV's bounding box + 2 voxels.
    """
    from synthct.preprocessing.outline import body_outline, cbct_fov, cone_slices

    src, dst = source / "pancreatic-ct-cbct-seg", out / "pancreas_cbct"
    dst.mkdir(parents=True, exist_ok=True)
    ct_im = sitk.ReadImage(str(src / "ct_plan.nii.gz"))
    cb_im = sitk.ReadImage(str(src / "cbct_CB02_aligned_resampled.nii.gz"))
    ct, cb = sitk.GetArrayFromImage(ct_im), sitk.GetArrayFromImage(cb_im)
    z_cb = PANCREAS_CBCT_Z0
    n = min(ct.shape[0], cb.shape[0] - z_cb)
    ct, cb = ct[:n].astype(np.int16), cb[z_cb : z_cb + n]
    fov = cbct_fov(cb)
    keep = cone_slices(fov)
    z0, z1 = int(keep.min()), int(keep.max()) + 1
    ct, cb, fov = ct[z0:z1], cb[z0:z1], fov[z0:z1]
    ys, xs = np.nonzero(fov.any(axis=0))
    y0, y1 = max(int(ys.min()) - PANCREAS_MARGIN, 0), min(int(ys.max()) + 1 + PANCREAS_MARGIN, ct.shape[1])
    x0, x1 = max(int(xs.min()) - PANCREAS_MARGIN, 0), min(int(xs.max()) + 1 + PANCREAS_MARGIN, ct.shape[2])
    ct, cb, fov = ct[:, y0:y1, x0:x1], cb[:, y0:y1, x0:x1], fov[:, y0:y1, x0:x1]
    ct, cb = np.clip(ct, *HU_CLIP), np.clip(cb, *HU_CLIP)
    spacing_zyx = tuple(reversed(ct_im.GetSpacing()))
    mask = body_outline(cb, spacing_zyx, fov=fov)
    ct = np.where(fov, ct, -1000).astype(np.int16)
    cb = np.where(fov, cb, -1000).astype(np.int16)
    reference = ct_im[x0:x1, y0:y1, z0:z1]
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(src / "labels_ct_plan.nii.gz")))
    labels = labels[z0:z1, y0:y1, x0:x1].astype(np.uint8)
    shutil.copyfile(src / "labels_ct_plan.labels.json", dst / "labels.json")
    for name, array in (("ct", ct), ("cbct", cb), ("mask", mask.astype(np.uint8)), ("labels", labels)):
        image = sitk.GetImageFromArray(array)
        image.CopyInformation(reference)
        _write(image, dst / f"{name}.mha")
    _provenance(src, dst, f"""
Files `ct.mha`, `cbct.mha`, `mask.mha` ({x1 - x0} x {y1 - y0} x {z1 - z0} voxels, 1.074 x 1.074 x 3 mm, int16 HU /
uint8), a SynthRAD2025-style Task 2 "Abdomen" pair on the planning-CT grid (no resampling):
- CT axial slices z = {z0}..{z1 - 1} of `ct_plan.nii.gz` = CBCT slices z = {z_cb + z0}..{z_cb + z1 - 1} of
  `cbct_CB02_aligned_resampled.nii.gz` (the overlap of both, after SynthRAD's cone correction: slices whose FOV area
  exceeds 95 % of the largest), in-plane crop x = {x0}..{x1 - 1}, y = {y0}..{y1 - 1} (the FOV's bounding box + 2
  voxels);
- CBCT field of view per slice from its radial profile (`synthct.preprocessing.outline.cbct_fov`); CT and CBCT set to
  -1000 outside it and clipped to [-1024, 3071] (SynthRAD `clip_data.py`);
- `mask.mha`: body outline from the CBCT as SynthRAD2025 stage 2 builds it
  (`synthct.preprocessing.outline.body_outline`, threshold t = 0.3, 10 mm in-plane dilation, ∩ FOV);
- `labels.mha` + `labels.json`: the clinic's RTSTRUCT contours on the planning CT (`labels_ct_plan.nii.gz`, same
  crop, uint8; names in `labels.json`, a byte copy of `labels_ct_plan.labels.json`): ROI, Bowel_sm, Stomach_duo,
  both lungs (the lungs lie above the held-out slab). `synthct dose` uses ROI as target, the organs as OARs.
The pairing is the clinic's RIGID alignment (no deformable registration, unlike the release's `ct_def`).
Licence: CC BY 4.0 + TCIA data usage policy (see LICENSE file); cite Hong et al. 2022 and TCIA (below).""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--source", type=Path, default=root.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=root / "samples")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.source.is_dir():
        raise SystemExit(f"source data folder not found: {args.source}")
    for derive in (porcine, totalsegmentator, openkbp, pancreas_cbct):
        derive(args.source, args.out)


if __name__ == "__main__":
    main()
