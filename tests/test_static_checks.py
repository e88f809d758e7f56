"""The static checks of CI: ``.ci/run`` runs mypy on ``src/`` with the configuration of pyproject.toml, mypy is pinned
in the dev extra, and the configuration silences nothing wholesale (no ``ignore_errors``, no global
``ignore_missing_imports``, no ``type: ignore`` without an error code)."""

from __future__ import annotations

import re
import tomllib

from testutils import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_ci_runs_mypy_on_src_with_a_pinned_version() -> None:
    steps = [line.split("#")[0].strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert ".venv/bin/mypy" in steps
    assert steps.index(".venv/bin/mypy") < steps.index("make test")
    assert any(re.fullmatch(r"mypy==[0-9.]+", dep) for dep in PYPROJECT["project"]["optional-dependencies"]["dev"])
    assert PYPROJECT["tool"]["mypy"]["files"] == ["src"]


def test_the_mypy_configuration_silences_nothing_wholesale() -> None:
    config = PYPROJECT["tool"]["mypy"]
    assert not config.get("ignore_errors") and not config.get("ignore_missing_imports")
    for override in config.get("overrides", []):
        assert not override.get("ignore_errors"), override
        assert not any(m.startswith("synthct") for m in override["module"]), override  # third-party only


def test_every_type_ignore_names_its_error_code() -> None:
    bare = [f"{p.relative_to(REPO)}:{i}" for p in sorted((REPO / "src").rglob("*.py"))
            for i, line in enumerate(p.read_text().splitlines(), 1)
            if re.search(r"#\s*type:\s*ignore(?!\[)", line)]
    assert not bare, "\n".join(bare)
