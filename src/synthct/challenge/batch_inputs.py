"""Find the cases of a batch prediction in one of three layouts (nothing is read but file names and region.json).

1. A SynthRAD2025 release (or any part of it): ``[Task1/][HN/]<id>/{mr|cbct}.mha + mask.mha`` (``ct.mha`` may be
   there too). Task from the file name (``mr`` → mri, ``cbct`` → cbct); region from the enclosing ``HN``/``TH``/``AB``
   folder, else from a SynthRAD id (``1HNA001`` → HN), else ``--region``.
2. A folder of grand-challenge case folders: ``<case>/images/{mri|cbct}/<x>.mha``, ``images/body/<x>.mha``,
   ``region.json`` (validated exactly as process.py does).
3. Flat folders: ``IMAGES/<id>.mha`` with ``MASKS/<id>.mha`` (``--masks``); task from ``--task`` or the id's first
   character (1 → mri, 2 → cbct), region from the id or ``--region``.

The output of a case is ``<id>.mha``; ``<id>`` is the case folder's name (layouts 1, 2) or the file stem (3).
A case whose task, region or files cannot be determined is still listed, with its problem, so that the batch reports
it by id and carries on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synthct.challenge.errors import CaseError
from synthct.challenge.inputs import Case, detect_task, load_case, load_pair, read_region
from synthct.contracts import synthrad
from synthct.contracts.synthrad import IMAGE_SUFFIXES
from synthct.io.image import images_by_stem

#: How deep below the input folder cases are looked for (ROOT/Task1/HN/<id> is depth 3).
MAX_DEPTH = 3


@dataclass(frozen=True)
class BatchCase:
    """One case to predict. ``gc_root`` is set for grand-challenge folders, else ``image`` and ``mask``.

    ``problem`` (path, text) is set when the case cannot be predicted; :meth:`load` raises it.
    """

    case_id: str
    task: str | None
    region: str | None
    image: Path | None = None
    mask: Path | None = None
    gc_root: Path | None = None
    problem: tuple[str, str] | None = None

    def load(self) -> Case:
        """Read and validate the case (the checks of process.py). Raises CaseError."""
        if self.problem is not None:
            raise CaseError(*self.problem)
        if self.gc_root is not None:
            return load_case(self.gc_root)
        assert self.task and self.region and self.image and self.mask
        return load_pair(self.task, self.region, self.image, self.mask)


def _images(folder: Path) -> dict[str, Path]:
    """Stem → image file directly in ``folder`` (hidden files ignored)."""
    return images_by_stem(folder, IMAGE_SUFFIXES)


def _region_from_id(case_id: str) -> str | None:
    code = case_id[1:3]
    numbers = [str(t.number) for t in synthrad.TASKS]
    return code if len(case_id) >= 3 and case_id[0] in numbers and code in synthrad.region_codes() else None


def _task_from_id(case_id: str) -> str | None:
    return next((t.name for t in synthrad.TASKS if case_id[:1] == str(t.number)), None)


def _release_inputs() -> dict[str, str]:
    """Release file stem → task (``mr`` → mri, ``cbct`` → cbct)."""
    return {t.input_stem: t.name for t in synthrad.TASKS}


def task_from_name(image: Path) -> str | None:
    """The task an image's name says: a release stem (``mr.mha`` → mri, ``cbct.mha`` → cbct), else the SynthRAD id of
    its stem or of its folder (``1HNA001.mha``, ``1HNA001/x.mha`` → mri); None when neither does."""
    stem = synthrad.strip_image_suffix(image.name) or image.name
    if stem in _release_inputs():
        return _release_inputs()[stem]
    ids = [name for name in (stem, image.parent.name) if _is_case_id(name)]
    return _task_from_id(ids[0]) if ids else None


def region_from_name(image: Path) -> str | None:
    """The region code of the SynthRAD id of an image's stem or of its folder; None when neither is an id."""
    stem = synthrad.strip_image_suffix(image.name) or image.name
    ids = [name for name in (stem, image.parent.name) if _is_case_id(name)]
    return _region_from_id(ids[0]) if ids else None


def _is_case_id(name: str) -> bool:
    return synthrad.case_id_pattern().match(name) is not None


def _release_case(folder: Path, files: dict[str, Path], region: str | None) -> BatchCase:
    release_inputs = _release_inputs()
    inputs = [stem for stem in release_inputs if stem in files]
    case_id = folder.name
    region = region or _region_from_id(case_id)
    if len(inputs) != 1:
        wanted = ", ".join(f"{stem}.mha" for stem in release_inputs)
        return BatchCase(case_id, None, region, problem=(str(folder), f"expected one of {wanted}, "
                                                                     f"found {inputs or 'none'}"))
    task = release_inputs[inputs[0]]
    if region is None:
        folders = "/".join(synthrad.region_codes())
        return BatchCase(case_id, task, None, problem=(str(folder), "region unknown: put the case under an "
                                                                    f"{folders} folder or pass --region"))
    return BatchCase(case_id, task, region, image=files[inputs[0]], mask=files["mask"])


def _gc_case(folder: Path) -> BatchCase:
    try:
        task, _ = detect_task(folder)
        region = read_region(folder)
    except CaseError as exc:
        return BatchCase(folder.name, None, None, problem=(exc.path, exc.problem))
    return BatchCase(folder.name, task, region, gc_root=folder)


def _walk(folder: Path, depth: int, region: str | None, fallback_region: str | None, out: list[BatchCase]) -> None:
    if (folder / "images").is_dir():
        out.append(_gc_case(folder))
        return
    files = _images(folder)
    if "mask" in files and any(stem in files for stem in _release_inputs()):
        out.append(_release_case(folder, files, region or _region_from_id(folder.name) or fallback_region))
        return
    if depth >= MAX_DEPTH:
        return
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        _walk(sub, depth + 1, sub.name if sub.name in synthrad.region_codes() else region, fallback_region, out)


def _flat_cases(images_dir: Path, masks_dir: Path, task: str | None, region: str | None) -> list[BatchCase]:
    if not masks_dir.is_dir():
        raise FileNotFoundError(f"mask folder {masks_dir} does not exist")
    masks = _images(masks_dir)
    cases = []
    for case_id, image in _images(images_dir).items():
        case_task = task or _task_from_id(case_id)
        case_region = _region_from_id(case_id) or region
        problem = None
        if case_id not in masks:
            problem = (str(masks_dir), f"no mask {case_id}.mha (or .nii.gz) for {image.name}")
        elif case_task is None:
            problem = (str(image), f"task unknown: not a SynthRAD id; pass --task {'|'.join(synthrad.task_names())}")
        elif case_region is None:
            problem = (str(image), "region unknown: not a SynthRAD id; pass --region "
                       f"{'|'.join(synthrad.region_codes())}")
        cases.append(BatchCase(case_id, case_task, case_region, image=image, mask=masks.get(case_id),
                               problem=problem))
    return cases


def discover_cases(input_dir: Path, masks_dir: Path | None = None, task: str | None = None,
                   region: str | None = None) -> list[BatchCase]:
    """The cases under ``input_dir`` (layouts in the module docstring), sorted by id.

    Args:
        input_dir: a release folder (any level), a folder of grand-challenge case folders, or a folder of images.
        masks_dir: folder of body masks; selects the flat layout.
        task: "mri" or "cbct" for flat images whose ids do not say it.
        region: a region code (``synthrad.REGIONS``) where neither the path nor the id says it.

    Raises:
        FileNotFoundError: ``input_dir`` (or ``masks_dir``) does not exist or holds no case.
        ValueError: a bad ``task``/``region`` value, two images with one stem, or one case id twice.
    """
    if task is not None and task not in synthrad.task_names():
        raise ValueError(f"task must be one of {synthrad.task_names()}, got {task!r}")
    if region is not None:
        synthrad.get_region(region)
    if not input_dir.is_dir():
        raise FileNotFoundError(f"input folder {input_dir} does not exist")
    if masks_dir is not None:
        cases = _flat_cases(input_dir, masks_dir, task, region)
    else:
        cases = []
        top = input_dir.name if input_dir.name in synthrad.region_codes() else None
        _walk(input_dir, 0, top, region, cases)
    if not cases:
        raise FileNotFoundError(
            f"no cases under {input_dir}: expected a SynthRAD2025 release (Task1/HN/<id>/mr.mha + mask.mha), "
            "grand-challenge case folders (<case>/images/mri/..., images/body/..., region.json) or, with --masks, "
            "a folder of <id>.mha images")
    ids = [c.case_id for c in cases]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ValueError(f"case id(s) found more than once under {input_dir}: {', '.join(twice)}")
    return sorted(cases, key=lambda c: c.case_id)
