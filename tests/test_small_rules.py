"""Small rules of issue 21: no private name imported across modules, no absolute machine path in the committed
reports, ``plan_dataset`` takes its options by keyword, a subcommand module that does not import is reported, one
``resolve_device``."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from testutils import REPO, load_script

from synthct.cli import main as cli_main


def _private_imports(root: Path) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("synthct"):
                bad += [f"{path.relative_to(root)}:{node.lineno} {node.module}.{a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
    return bad


def test_no_private_name_is_imported_across_modules(tmp_path: Path) -> None:
    bad = _private_imports(REPO / "src")
    assert not bad, "\n".join(bad)
    (tmp_path / "m.py").write_text("from synthct.challenge.routing import _options\n")
    assert _private_imports(tmp_path) == ["m.py:1 synthct.challenge.routing._options"]


def _absolute_paths(value: object) -> list[str]:
    if isinstance(value, dict):
        return [p for v in value.values() for p in _absolute_paths(v)]
    if isinstance(value, list):
        return [p for v in value for p in _absolute_paths(v)]
    return [value] if isinstance(value, str) and re.match(r"^(/|[A-Za-z]:\\)", value) else []


def test_committed_reports_hold_no_absolute_path() -> None:
    found = {p.name: _absolute_paths(json.loads(p.read_text())) for p in sorted((REPO / "docs").glob("*.json"))}
    assert found and not any(found.values()), found
    assert _absolute_paths({"a": ["x", {"b": "/work/main/weights"}]}) == ["/work/main/weights"]


def test_the_afp_report_stores_repository_relative_paths(tmp_path: Path) -> None:
    experiment = load_script("afp_experiment")
    assert experiment.repo_relative(REPO / "weights" / "extractor" / "x", tmp_path) == "weights/extractor/x"
    assert experiment.repo_relative(tmp_path / "extractor" / "results", tmp_path) == "$WORK/extractor/results"
    with pytest.raises(ValueError, match="neither under the repository"):
        experiment.repo_relative(Path("/elsewhere/x"), tmp_path)


def test_plan_dataset_options_are_keyword_only() -> None:
    from synthct.network.planning import plan_dataset

    with pytest.raises(TypeError, match="positional"):
        plan_dataset(513, ("unet",), 8)  # type: ignore[misc]


def test_a_subcommand_module_that_does_not_import_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_main, "SUBCOMMANDS", (*cli_main.SUBCOMMANDS, "not_written_yet"))
    with pytest.warns(RuntimeWarning, match="subcommand 'not_written_yet' is unavailable"):
        parser = cli_main.build_parser()
    assert parser.parse_args(["route", "--list"]).list  # the other subcommands still work


def _defined_in(name: str) -> list[str]:
    """Files of src/ that define a function or class ``name``."""
    return [str(p.relative_to(REPO)) for p in sorted((REPO / "src").rglob("*.py"))
            for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name == name]


def test_one_resolve_device_one_case_error_one_predict_batch() -> None:
    assert _defined_in("resolve_device") == ["src/synthct/network/device.py"]
    assert _defined_in("CaseError") == ["src/synthct/challenge/errors.py"]
    assert _defined_in("predict_batch") == ["src/synthct/challenge/batch.py"]  # the tile batch's: ensemble_forward
    from synthct.network.device import resolve_device

    assert resolve_device("cpu").type == "cpu" and resolve_device("auto", local_rank=1).type in ("cpu", "cuda")
