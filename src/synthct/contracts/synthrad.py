"""The SynthRAD2025 data contract: tasks, anatomical regions, region codes, case ids and accepted image suffixes.

The one table every other module derives from (challenge input, routing, model manifests, dataset conversion,
evaluation, CLI choices). Adding a region is one new :class:`Region` row in :data:`REGIONS` (and a test); nothing
else lists region codes. Every accessor reads the tables at call time, so a test may extend them with
``monkeypatch.setattr``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    """One challenge task.

    Attributes:
        name: the task's name in model manifests, routing files and the CLI ("mri", "cbct").
        number: the SynthRAD task number (1, 2): first digit of a case id, ``Task<number>`` release folder.
        input_stem: file stem of the input image in a release case folder (``mr.mha``, ``cbct.mha``).
        input_dir: the input image folder of a grand-challenge case, relative to its root.
        modality: the input modality in words, for help texts.
    """

    name: str
    number: int
    input_stem: str
    input_dir: str
    modality: str


@dataclass(frozen=True)
class Region:
    """One anatomical region.

    Attributes:
        code: two-letter code in case ids, release folders, routing files and manifests ("HN").
        name: the region string of a grand-challenge ``region.json`` ("Head and Neck").
        dataset_offset: nnU-Net dataset id offset (id = base + 10·task + offset; offset 0 is "all regions").
        scored_labels: TotalSegmentator v2 ``total`` labels the evaluation scores for this region
            (``segmentation_metrics.py`` of the official evaluation; ``challenge.md`` §9.3).
        dose_photon_beams: default number of equally spaced coplanar photon beams of ``synthct dose``.
        dose_proton_gantry: default proton field gantry angles of ``synthct dose``, degrees (docs/dose.md).
    """

    code: str
    name: str
    dataset_offset: int
    scored_labels: tuple[int, ...]
    dose_photon_beams: int = 7
    dose_proton_gantry: tuple[float, ...] = (90.0, 180.0, 270.0)


_VERTEBRAE = tuple(range(26, 51))  # vertebrae S1 (26) ... C1 (50); sacrum (25) is not scored
_LUNG_LOBES = tuple(range(10, 15))  # upper left, lower left, upper right, middle right, lower right
_RIBS = tuple(range(92, 116))  # rib_left_1..12 (92-103), rib_right_1..12 (104-115)
#: AB and TH share one list: kidneys (2, 3), liver (5), stomach (6), lung lobes, vertebrae, heart (51), spinal cord
#: (79), ribs, sternum (116).
_TORSO = tuple(sorted((2, 3, 5, 6, *_LUNG_LOBES, *_VERTEBRAE, 51, 79, *_RIBS, 116)))
#: HN: esophagus (15), trachea (16), thyroid (17), vertebrae, spinal cord, brain (90), skull (91).
_HEAD_NECK = tuple(sorted((15, 16, 17, *_VERTEBRAE, 79, 90, 91)))

TASKS: tuple[Task, ...] = (
    Task("mri", 1, "mr", "images/mri", "MR"),
    Task("cbct", 2, "cbct", "images/cbct", "CBCT"),
)
REGIONS: tuple[Region, ...] = (
    Region("HN", "Head and Neck", 1, _HEAD_NECK, dose_photon_beams=9, dose_proton_gantry=(45.0, 180.0, 315.0)),
    Region("TH", "Thorax", 2, _TORSO),
    Region("AB", "Abdomen", 3, _TORSO),
)
#: File name endings read as images, everywhere (challenge input, batch discovery, evaluation).
IMAGE_SUFFIXES: tuple[str, ...] = (".mha", ".nii.gz", ".nii", ".nrrd")
#: The pseudo-region of "every region in one dataset / route" (CLI ``all``, dataset offset 0).
ALL_REGIONS = "all"


def task_names() -> tuple[str, ...]:
    """The task names, in table order: ``("mri", "cbct")``."""
    return tuple(t.name for t in TASKS)


def region_codes() -> tuple[str, ...]:
    """The region codes, in table order: ``("HN", "TH", "AB")``."""
    return tuple(r.code for r in REGIONS)


def get_task(key: str | int) -> Task:
    """The task of a name ("mri"), a number (1) or a case-id digit ("1").

    Raises:
        ValueError: no such task; the message quotes the value and lists the known names.
    """
    for task in TASKS:
        if key in (task.name, task.number, str(task.number)):
            return task
    raise ValueError(f"task must be one of {task_names()} (or {tuple(t.number for t in TASKS)}), got {key!r}")


def get_region(code: str) -> Region:
    """The region of a code ("HN").

    Raises:
        ValueError: no such region; the message quotes the value and lists the known codes.
    """
    for region in REGIONS:
        if code == region.code:
            return region
    raise ValueError(f"region must be one of {region_codes()}, got {code!r}")


def region_names() -> dict[str, str]:
    """``region.json`` string → region code: ``{"Head and Neck": "HN", ...}``."""
    return {r.name: r.code for r in REGIONS}


def case_id_pattern() -> re.Pattern[str]:
    """A SynthRAD case id: task number, region code, centre letter, three digits (``1HNA001``)."""
    tasks = "".join(str(t.number) for t in TASKS)
    regions = "|".join(re.escape(r.code) for r in REGIONS)
    return re.compile(rf"^[{tasks}]({regions})[A-Z]\d{{3}}$")


def strip_image_suffix(name: str) -> str | None:
    """``name`` without its image suffix (case-insensitive), or None when it has none (or nothing else)."""
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None
