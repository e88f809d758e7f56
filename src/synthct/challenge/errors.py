"""The one exception type of the challenge layer: a problem with one named file, reported as one line."""

from __future__ import annotations

from pathlib import Path


class CaseError(Exception):
    """Bad input, missing model or unwritable output. ``str()`` is the one-line report: ``<path>: <problem>``."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
