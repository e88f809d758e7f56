"""``synthct convert``: a SynthRAD2025 training download → nnU-Net raw datasets (one per task and region by default).

Input layout (the released training data)::

    ROOT/Task1/{HN,TH,AB}/<id>/{mr,ct,mask}.mha      Task 2: cbct.mha instead of mr.mha

``ROOT`` may also be the ``Task1``/``Task2`` folder itself. Output, per dataset::

    OUT/Dataset<NNN>_SynthRAD2025Task<T><REGION>/
    ├── dataset.json                  channel 0 = input, channel 1 = CT target, label = body; plus a ``synthct`` block
    ├── imagesTr/<id>_0000.mha        input (MR or CBCT), unchanged values
    ├── imagesTr/<id>_0001.mha        CT clipped to [-1024, 3071] HU, stored unnormalised (HU)
    ├── labelsTr/<id>.mha             body mask, uint8 {0, 1}
    └── conversion_report.json        converted, excluded and skipped cases (with the reason)

Every case is validated: all three files present and readable, same size and geometry (the CT and the mask are
written with the input's geometry once they match it within 1e-3 mm), finite values, a non-empty mask. Bad cases
are skipped and reported by id. Dataset ids: ``base + 10·task + {all: 0, HN: 1, TH: 2, AB: 3}`` (511 = Task 1 HN).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from synthct import HU_MAX, HU_MIN
from synthct.contracts import synthrad
from synthct.io.image import Geometry, read_image, write_image_atomic
from synthct.io.staging import staged_folder
from synthct.typing import PathLike

LOG = logging.getLogger(__name__)

#: nnU-Net channel names: "CT" makes stock nnU-Net pick CT normalisation for CBCT; "noNorm" keeps the target in HU.
CHANNEL_NAMES = {1: {"0": "MR", "1": "noNorm"}, 2: {"0": "CT", "1": "noNorm"}}
FILE_ENDING = ".mha"


@dataclass
class ConversionReport:
    """Outcome of converting one (task, region) dataset."""

    dataset_dir: Path
    converted: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"dataset": self.dataset_dir.name, "converted": sorted(self.converted),
                "excluded": sorted(self.excluded), "skipped": dict(sorted(self.skipped.items()))}


class UnusableCase(ValueError):
    """A training case that cannot be used; the message says why."""


def _task(number: int) -> synthrad.Task:
    """The task of a SynthRAD task number. Raises ValueError naming the known numbers."""
    if isinstance(number, bool) or number not in [t.number for t in synthrad.TASKS]:
        known = " or ".join(f"{t.number} ({t.modality})" for t in synthrad.TASKS)
        raise ValueError(f"task must be {known}, got {number!r}")
    return synthrad.get_task(number)


def _region_offsets() -> dict[str, int]:
    """Region code (and "all") → dataset id offset, from the region table."""
    return {synthrad.ALL_REGIONS: 0, **{r.code: r.dataset_offset for r in synthrad.REGIONS}}


def dataset_id(task: int, region: str, base: int = 500) -> int:
    """nnU-Net dataset id of (task, region): ``base + 10·task + offset`` (offset: all 0, else the region table's:
    HN 1, TH 2, AB 3)."""
    _task(task)
    offsets = _region_offsets()
    if region not in offsets:
        raise ValueError(f"region must be one of {sorted(offsets)}, got {region!r}")
    value = base + 10 * task + offsets[region]
    if not 1 <= value <= 999:
        raise ValueError(f"dataset id {value} (base {base}) is outside nnU-Net's 1..999")
    return value


def dataset_name(task: int, region: str, base: int = 500) -> str:
    label = "" if region == "all" else region
    return f"Dataset{dataset_id(task, region, base):03d}_SynthRAD2025Task{task}{label}"


def task_root(root: PathLike, task: int) -> Path:
    """``ROOT/Task<task>`` if it exists, else ``ROOT`` itself when it holds region folders."""
    root = Path(root)
    candidate = root / f"Task{task}"
    if candidate.is_dir():
        return candidate
    regions = synthrad.region_codes()
    if any((root / r).is_dir() for r in regions):
        return root
    raise FileNotFoundError(f"no Task{task} folder and no region folder {regions} under {root}")


def find_cases(root: PathLike, task: int, regions: Sequence[str]) -> dict[str, list[Path]]:
    """Case folders per region (``overview`` folders and files are ignored), sorted by id."""
    base = task_root(root, task)
    found = {}
    for region in regions:
        folder = base / region
        found[region] = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.lower().startswith(
            "overview")) if folder.is_dir() else []
    return found


def read_exclude_file(path: PathLike | None) -> set[str]:
    """Case ids to leave out: one per line; blank lines and ``#`` comments ignored."""
    if path is None:
        return set()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"exclude file not found: {path}")
    ids = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            ids.add(line)
    return ids


def _check_same_grid(name: str, geometry: Geometry, reference: Geometry, reference_name: str) -> None:
    """CaseError naming ``name`` and quoting its value first, then the input's (``reference_name``)."""
    problem = geometry.mismatch(reference)  # "<field> <name's value> vs <input's value>"
    if problem is not None:
        field, _, values = problem.partition(" ")
        mine, _, theirs = values.partition(" vs ")
        raise UnusableCase(f"{name} does not match the input grid: {name} {field} {mine} vs {reference_name} {theirs}")


def load_case(case_dir: Path, task: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, Geometry]:
    """Read and validate one case. Returns (input (Z, Y, X) as stored, CT (Z, Y, X) HU clipped, mask (Z, Y, X)
    uint8 {0, 1}, the input's geometry).

    Raises:
        UnusableCase: missing or unreadable file, size/geometry mismatch, non-finite values, empty mask.
    """
    files = {"input": case_dir / f"{_task(task).input_stem}.mha", "ct": case_dir / "ct.mha",
             "mask": case_dir / "mask.mha"}
    missing = [p.name for p in files.values() if not p.is_file()]
    if missing:
        raise UnusableCase(f"missing {', '.join(missing)}")
    try:
        image, geometry, _ = read_image(files["input"])
        ct, ct_geometry, _ = read_image(files["ct"])
        mask, mask_geometry, _ = read_image(files["mask"])
    except (ValueError, FileNotFoundError) as exc:
        raise UnusableCase(str(exc)) from None
    _check_same_grid("ct.mha", ct_geometry, geometry, files["input"].name)
    _check_same_grid("mask.mha", mask_geometry, geometry, files["input"].name)
    for name, array in (("input", image), ("ct.mha", ct)):
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise UnusableCase(f"{name} contains non-finite values")
    body = (mask > 0).astype(np.uint8)
    if not body.any():
        raise UnusableCase("mask.mha is empty")
    ct_dtype = np.int16 if np.issubdtype(ct.dtype, np.integer) else np.float32
    ct = np.clip(ct, HU_MIN, HU_MAX).astype(ct_dtype)
    return image, ct, body, geometry


def _convert_case(case_dir: Path, task: int, out: Path) -> None:
    image, ct, body, geometry = load_case(case_dir, task)
    case = case_dir.name
    write_image_atomic(image, geometry, out / "imagesTr" / f"{case}_0000{FILE_ENDING}")
    write_image_atomic(ct, geometry, out / "imagesTr" / f"{case}_0001{FILE_ENDING}")
    write_image_atomic(body, geometry, out / "labelsTr" / f"{case}{FILE_ENDING}")


def _dataset_json(task: int, regions: Sequence[str], n_cases: int) -> dict:
    return {
        "channel_names": CHANNEL_NAMES[task],
        "labels": {"background": 0, "body": 1},
        "numTraining": n_cases,
        "file_ending": FILE_ENDING,
        "overwrite_image_reader_writer": "SimpleITKIO",
        "name": f"SynthRAD2025 Task {task} ({'+'.join(regions)})",
        "synthct": {"task": _task(task).name, "regions": list(regions), "input_channels": [0],
                    "target_channels": [1], "hu_clip": [HU_MIN, HU_MAX]},
    }


def convert_dataset(case_dirs: Iterable[Path], task: int, regions: Sequence[str], out_dir: PathLike,
                    exclude: set[str] | None = None, workers: int = 4, overwrite: bool = False) -> ConversionReport:
    """Convert ``case_dirs`` into the nnU-Net raw dataset folder ``out_dir``.

    Raises:
        FileExistsError: ``out_dir`` exists and ``overwrite`` is false.
        ValueError: no case could be converted.
    """
    out = Path(out_dir)
    with staged_folder(out, overwrite, "dataset folder") as tmp:
        report = _convert_into(case_dirs, task, regions, tmp, ConversionReport(out), exclude, workers)
    LOG.info("%s: %d cases converted, %d excluded, %d skipped", out.name, len(report.converted),
             len(report.excluded), len(report.skipped))
    return report


def _convert_into(case_dirs: Iterable[Path], task: int, regions: Sequence[str], out: Path, report: ConversionReport,
                  exclude: set[str] | None, workers: int) -> ConversionReport:
    """Fill the (staging) folder ``out`` and ``report``; raises ValueError when no case converts."""
    (out / "imagesTr").mkdir(parents=True)
    (out / "labelsTr").mkdir()
    name = report.dataset_dir.name
    todo = []
    for case_dir in case_dirs:
        if case_dir.name in (exclude or set()):
            report.excluded.append(case_dir.name)
        else:
            todo.append(case_dir)

    def work(case_dir: Path) -> tuple[str, str | None]:
        try:
            _convert_case(case_dir, task, out)
        except UnusableCase as exc:
            return case_dir.name, str(exc)
        return case_dir.name, None

    with ThreadPoolExecutor(max(1, workers)) as pool:
        for case, problem in tqdm(pool.map(work, todo), total=len(todo), desc=f"convert {name}",
                                  unit="case", disable=None):
            if problem is None:
                report.converted.append(case)
            else:
                report.skipped[case] = problem
                for leftover in [*(out / "imagesTr").glob(f"{case}_000?{FILE_ENDING}"),
                                 out / "labelsTr" / f"{case}{FILE_ENDING}"]:
                    leftover.unlink(missing_ok=True)
                LOG.warning("skipped case %s: %s", case, problem)
    if not report.converted:
        raise ValueError(f"no usable case for {name}; skipped: {report.skipped}")
    (out / "conversion_report.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
    (out / "dataset.json").write_text(json.dumps(_dataset_json(task, regions, len(report.converted)), indent=2))
    return report


def convert_synthrad(root: PathLike, out_root: PathLike, task: int, region: str | None = None,
                     exclude_file: PathLike | None = None, id_base: int = 500, workers: int = 4,
                     overwrite: bool = False) -> list[ConversionReport]:
    """Convert a SynthRAD2025 download into nnU-Net raw datasets under ``out_root`` (the nnUNet_raw folder).

    Args:
        root: download root (holding ``Task1``/``Task2``) or the task folder itself.
        out_root: nnU-Net raw folder to write the datasets into.
        task: 1 (MRI → CT) or 2 (CBCT → CT).
        region: None = one dataset per region found; a region code (``synthrad.REGIONS``) = that region only;
            "all" = one dataset with every region.
        exclude_file: text file of case ids to leave out (e.g. misaligned pairs).
        id_base: base of the dataset ids (see :func:`dataset_id`).
        workers: parallel reader/writer threads.
        overwrite: replace existing dataset folders.

    Returns:
        One report per dataset written.
    """
    offsets = _region_offsets()
    if region is not None and region not in offsets:
        raise ValueError(f"region must be one of {sorted(offsets)} or None, got {region!r}")
    wanted = synthrad.region_codes() if region in (None, synthrad.ALL_REGIONS) else (region,)
    cases = find_cases(root, task, wanted)
    exclude = read_exclude_file(exclude_file)
    groups = {"all": [c for r in wanted for c in cases[r]]} if region == "all" else {r: cases[r] for r in wanted}
    groups = {name: dirs for name, dirs in groups.items() if dirs}
    if not groups:
        raise FileNotFoundError(f"no case folders for task {task}, regions {list(wanted)} under {root}")
    targets = {name: Path(out_root) / dataset_name(task, name, id_base) for name in groups}
    existing = [str(t) for t in targets.values() if t.exists()]
    if existing and not overwrite:  # before any dataset is written
        raise FileExistsError(f"dataset folder(s) exist: {', '.join(existing)}; pass --force to replace them")
    reports = []
    for name, dirs in groups.items():
        regions_here = [r for r in wanted if cases[r]] if name == "all" else [name]
        reports.append(convert_dataset(dirs, task, regions_here, targets[name], exclude, workers, overwrite))
    return reports
