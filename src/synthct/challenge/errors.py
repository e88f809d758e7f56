"""The one exception type of the challenge layer: a problem with one named file, reported as one line."""

from __future__ import annotations

from pathlib import Path

#: Longest problem text kept in a report (bad values are quoted shortened where they are found; this is the bound).
MAX_PROBLEM_CHARS = 2000


def one_line(text: str, limit: int) -> str:
    """``text`` as one printable line: control characters (a newline in a file name) and undecodable bytes escaped,
    cut in the middle beyond ``limit`` characters."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return text if len(text) <= limit else f"{text[: limit // 2]} ... {text[-(limit // 2):]}"


class CaseError(Exception):
    """Bad input, missing model or unwritable output. ``str()`` is the one-line report: ``<path>: <problem>``."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = one_line(str(path), 300)
        self.problem = one_line(problem, MAX_PROBLEM_CHARS)
        super().__init__(f"{self.path}: {self.problem}")
