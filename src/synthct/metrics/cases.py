"""Pair prediction, ground-truth, mask and input files of an evaluation by case id.

Case ids follow the SynthRAD2025 pattern ``<task><region><centre><number>``, e.g. ``1HNA001`` (task number, region
code of :mod:`synthct.contracts.synthrad`, centre letter, three digits). A file's id is its stem (name without one of
``synthrad.IMAGE_SUFFIXES``: ``.mha``, ``.nii.gz``, ``.nii``, ``.nrrd``);
when the stem's last 7 characters form a SynthRAD id, those 7 characters are the id (``ct_1HNA001.nii.gz`` →
``1HNA001``). A prediction, mask or input file matches a ground-truth case by its full stem, by that SynthRAD id, or by
the last 7 characters of its stem, the official prediction-only convention (``sct_1HNA001.mha`` ↔ ``1HNA001.mha``,
SynthRAD2025/evaluation 17cac47 ``evaluate.py``). The ground-truth, mask and input folders may also be a SynthRAD2025
release folder (``Task1/HN`` holding ``<id>/ct.mha``, ``<id>/mask.mha``, ``<id>/mr.mha`` or ``cbct.mha``): a folder
with no image directly in it is searched for case folders, whose names are the ids. Nothing is dropped silently: a
ground-truth case without a prediction, a prediction without a ground truth, two files for one case and a missing mask
or input are errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synthct.contracts import synthrad
from synthct.contracts.synthrad import IMAGE_SUFFIXES
from synthct.io.image import images_by_stem

#: File stems of a release case folder (``Task1/HN/<id>/``) per evaluation folder kind.
RELEASE_NAMES: dict[str, tuple[str, ...]] = {"ground-truth": ("ct",), "mask": ("mask",),
                                             "input": tuple(t.input_stem for t in synthrad.TASKS)}
#: Region of a case id that does not follow the SynthRAD pattern.
UNKNOWN_REGION: str = "unknown"


@dataclass(frozen=True)
class CaseFiles:
    """The files of one case. ``mask``, ``input`` and ``gt_seg`` are None when their folder was not given."""

    case_id: str
    region: str
    pred: Path
    gt: Path
    mask: Path | None = None
    input: Path | None = None
    gt_seg: Path | None = None


def image_stem(path: Path) -> str | None:
    """File name without its image suffix, or None when ``path`` is not an image file by name."""
    return synthrad.strip_image_suffix(path.name)


def case_id_of(stem: str) -> str:
    """The case id of a file stem: its last 7 characters if they form a SynthRAD id, else the whole stem."""
    tail = stem[-7:]
    return tail if synthrad.case_id_pattern().match(tail) else stem


def region_of(case_id: str) -> str:
    """``case_id[1:3]`` (a region code) for a SynthRAD id, else :data:`UNKNOWN_REGION`."""
    return case_id[1:3] if synthrad.case_id_pattern().match(case_id) else UNKNOWN_REGION


def _images(folder: Path, what: str) -> dict[str, Path]:
    """Stem → path of the image files directly in ``folder``; for a folder without any, of a SynthRAD2025 release
    layout below it (:func:`release_images`)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} folder {folder} does not exist")
    out = images_by_stem(folder, IMAGE_SUFFIXES, what)
    if not out and what in RELEASE_NAMES:
        out = release_images(folder, RELEASE_NAMES[what])
    return out


def release_images(folder: Path, names: tuple[str, ...], depth: int = 3) -> dict[str, Path]:
    """Case id → file of a SynthRAD2025 release below ``folder`` (``[Task1/][HN/]<id>/<name>.mha``, up to ``depth``
    levels): the case folder's name is the id, ``names`` the accepted file stems (e.g. ``("mr", "cbct")``).

    Raises:
        ValueError: one case folder holds two of ``names``, or one id occurs twice.
    """
    out: dict[str, Path] = {}

    def walk(current: Path, level: int) -> None:
        files = [p for p in sorted(current.iterdir()) if p.is_file() and image_stem(p) in names]
        if len(files) > 1:
            raise ValueError(f"{current} holds more than one of {', '.join(names)}: {[p.name for p in files]}")
        if files:
            if current.name in out:
                raise ValueError(f"case {current.name!r} occurs twice: {out[current.name]} and {files[0]}")
            out[current.name] = files[0]
        if level < depth:
            for sub in sorted(p for p in current.iterdir() if p.is_dir() and not p.name.startswith(".")):
                walk(sub, level + 1)

    walk(folder, 0)
    return out


def _match(stem: str, case_ids: dict[str, Path]) -> str | None:
    """The ground-truth case a stem belongs to: full stem, SynthRAD id, or last 7 characters (in that order)."""
    for candidate in (stem, case_id_of(stem), stem[-7:]):
        if candidate in case_ids:
            return candidate
    return None


def _assign(folder: Path, what: str, case_ids: dict[str, Path]) -> tuple[dict[str, Path], list[Path]]:
    """Case id → file of ``folder``, and the files that match no case; errors on two files for one case."""
    assigned: dict[str, Path] = {}
    unmatched: list[Path] = []
    for stem, path in _images(folder, what).items():
        case = _match(stem, case_ids)
        if case is None:
            unmatched.append(path)
        elif case in assigned:
            raise ValueError(f"case {case!r} has two {what} files: {assigned[case]} and {path}")
        else:
            assigned[case] = path
    return assigned, unmatched


def _assign_predictions(pred_dir: Path, gt_by_case: dict[str, Path], gt_dir: Path,
                        skip_missing: bool) -> tuple[dict[str, Path], list[str]]:
    """Case id → prediction, and the cases without one (allowed only with ``skip_missing``).

    Raises:
        FileNotFoundError: naming every case without a prediction (unless skipped) and every prediction without a
            ground truth, in one message.
    """
    preds, extra = _assign(pred_dir, "prediction", gt_by_case)
    missing = sorted(set(gt_by_case) - set(preds))
    problems = []
    if missing and not skip_missing:
        problems.append(f"no prediction in {pred_dir} for case(s): {', '.join(missing)} (--skip-missing scores "
                        "the others)")
    if extra:
        problems.append(f"prediction file(s) in {pred_dir} without a ground-truth CT in {gt_dir}: "
                        f"{', '.join(p.name for p in extra)}")
    if problems:
        raise FileNotFoundError("; ".join(problems))
    if not preds:
        raise FileNotFoundError(f"no prediction in {pred_dir} for any case of {gt_dir}")
    return preds, missing


def pair_cases(
    pred_dir: Path,
    gt_dir: Path,
    *,
    masks_dir: Path | None = None,
    inputs_dir: Path | None = None,
    gt_seg_dir: Path | None = None,
) -> list[CaseFiles]:
    """Pair the files of the evaluation folders, one :class:`CaseFiles` per ground-truth CT, sorted by case id.

    Every case needs a prediction; :func:`pair_cases_skipping` skips those without one. Arguments and errors as
    there.
    """
    cases, _ = pair_cases_skipping(pred_dir, gt_dir, masks_dir=masks_dir, inputs_dir=inputs_dir,
                                   gt_seg_dir=gt_seg_dir, skip_missing=False)
    return cases


def pair_cases_skipping(
    pred_dir: Path,
    gt_dir: Path,
    *,
    masks_dir: Path | None = None,
    inputs_dir: Path | None = None,
    gt_seg_dir: Path | None = None,
    skip_missing: bool = True,
) -> tuple[list[CaseFiles], list[str]]:
    """Pair the files of the evaluation folders; returns the cases (sorted by id) and the ids skipped for lack of a
    prediction (only with ``skip_missing``; e.g. the broken cases that ``synthct predict`` skipped).

    Args:
        pred_dir: folder of synthetic CTs.
        gt_dir: folder of ground-truth CTs; defines the cases.
        masks_dir: folder of body masks; when given, every case needs one.
        inputs_dir: folder of the MR / CBCT inputs (for the QA montage); when given, every case needs one.
        gt_seg_dir: folder of ground-truth label maps; when given, every case needs one.
        skip_missing: leave out the cases without a prediction instead of failing.

    Raises:
        FileNotFoundError: a folder is missing or empty, a case lacks a prediction (unless skipped) / mask / input,
            or a prediction has no ground truth (every missing and every extra prediction named at once).
        ValueError: two files of one folder belong to the same case.
    """
    gt_by_case: dict[str, Path] = {}
    for stem, path in _images(gt_dir, "ground-truth").items():
        case = case_id_of(stem)
        if case in gt_by_case:
            raise ValueError(f"case {case!r} has two ground-truth files: {gt_by_case[case]} and {path}")
        gt_by_case[case] = path
    if not gt_by_case:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in the ground-truth folder {gt_dir}, "
                                "and no release case folders (<id>/ct.mha) below it")

    preds, skipped = _assign_predictions(pred_dir, gt_by_case, gt_dir, skip_missing)
    optional: dict[str, dict[str, Path]] = {}
    for key, folder in (("mask", masks_dir), ("input", inputs_dir), ("segmentation", gt_seg_dir)):
        if folder is None:
            continue
        optional[key], _ = _assign(folder, key, gt_by_case)
        lacking = sorted(set(preds) - set(optional[key]))
        if lacking:
            raise FileNotFoundError(f"no {key} in {folder} for case(s): {', '.join(lacking)}")

    cases = [
        CaseFiles(
            case_id=case,
            region=region_of(case),
            pred=preds[case],
            gt=gt_by_case[case],
            mask=optional.get("mask", {}).get(case),
            input=optional.get("input", {}).get(case),
            gt_seg=optional.get("segmentation", {}).get(case),
        )
        for case in sorted(preds)
    ]
    return cases, skipped
