"""Folders that appear complete or not at all: build in a hidden sibling, publish by rename.

Used by ``synthct export``, ``synthct convert`` and ``synthct extractor labels``: a failed or interrupted run leaves
neither a partial output folder nor the parent folders it created, so the corrected rerun does not fail with
"exists". Published folders are world-readable (directories 0755, files 0644), not mkdtemp's 0700.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DIR_MODE = 0o755
FILE_MODE = 0o644


def make_world_readable(root: Path) -> None:
    """chmod every folder under ``root`` (itself included) to 0755 and every file to 0644."""
    os.chmod(root, DIR_MODE)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(folder, name), DIR_MODE)
        for name in files:
            os.chmod(os.path.join(folder, name), FILE_MODE)


def _missing_parents(path: Path) -> list[Path]:
    return [p for p in reversed(path.parents) if not p.exists()]


@contextmanager
def staged_folder(out: Path, overwrite: bool = False, what: str = "output folder") -> Iterator[Path]:
    """Yield an empty hidden sibling of ``out`` to fill; on success it replaces ``out``, on failure it is removed.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is false (raised before anything is created).
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{what} {out} exists; pass --force to replace it")
    created = _missing_parents(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield tmp
        make_world_readable(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in reversed(created):
            shutil.rmtree(folder, ignore_errors=True)
        raise
