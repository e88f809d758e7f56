"""Configuration in one place: only ``synthct.paths`` reads or writes environment variables (``os.environ``,
``os.getenv``, ``os.putenv``, ``os.unsetenv``, ``os.environb``, under any import spelling). The one exception is
``synthct.openmp``, which must set ``OMP_WAIT_POLICY`` before torch loads (its docstring says why)."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest
from testutils import REPO

from synthct import paths

SRC = REPO / "src" / "synthct"
#: Modules allowed to touch the environment, relative to src/synthct.
ALLOWED = {"paths.py", "openmp.py"}
ENV_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def env_uses(path: Path) -> list[str]:
    """``line: what`` for every use of the process environment in ``path``."""
    tree = ast.parse(path.read_text())
    os_aliases = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
                  if a.name == "os"}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [f"{node.lineno}: from os import {a.name}" for a in node.names if a.name in ENV_NAMES]
        elif (isinstance(node, ast.Attribute) and node.attr in ENV_NAMES and isinstance(node.value, ast.Name)
              and node.value.id in os_aliases):
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return found


def offenders(root: Path) -> list[str]:
    return [f"{p.relative_to(root)}:{use}" for p in sorted(root.rglob("*.py"))
            if str(p.relative_to(root)) not in ALLOWED for use in env_uses(p)]


def test_only_paths_touches_the_environment() -> None:
    bad = offenders(SRC)
    assert not bad, "read it through synthct.paths (settings() or a named function):\n" + "\n".join(bad)


def test_the_check_sees_paths_and_openmp() -> None:
    """The allowed modules do use the environment, so the scan is not blind."""
    assert env_uses(SRC / "paths.py") and env_uses(SRC / "openmp.py")


@pytest.mark.parametrize("code", [
    "import os\nx = os.environ.get('SYNTHCT_TASK')\n",
    "import os as o\ndef f():\n    o.environ['X'] = '1'\n",
    "from os import environ\n",
    "import os\nos.getenv('HOME')\n",
    "import os\nos.putenv('A', 'b')\n",
])
def test_a_module_touching_the_environment_fails(tmp_path: Path, code: str) -> None:
    (tmp_path / "io").mkdir()
    (tmp_path / "io" / "reader.py").write_text(textwrap.dedent(code))
    (tmp_path / "paths.py").write_text("import os\nos.environ.get('nnUNet_raw')\n")
    (bad,) = offenders(tmp_path)
    assert bad.startswith("io/reader.py:")


def test_settings_are_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTHCT_TASK", "cbct")
    monkeypatch.setenv("SYNTHCT_TIME_BUDGET", "600")
    first = paths.settings()
    assert (first.task, first.time_budget, first.cpu_threads) == ("cbct", "600", None)
    monkeypatch.setenv("SYNTHCT_TASK", "mri")
    assert paths.settings().task == "mri" and first.task == "cbct"  # a frozen snapshot per call
    assert paths.settings({"SYNTHCT_CPU_THREADS": "3"}).cpu_threads == "3"


def test_augmentation_workers_zero_reads_as_one_inside_the_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    with paths.at_least_one_augmentation_worker():
        assert paths.data_augmentation_workers() == 1
    assert paths.data_augmentation_workers() == 0
    monkeypatch.setenv("nnUNet_n_proc_DA", "many")
    with pytest.raises(ValueError, match="nnUNet_n_proc_DA must be an integer, got 'many'"):
        paths.data_augmentation_workers()


def test_inductor_cache_keeps_the_users_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert paths.use_inductor_cache(str(tmp_path / "default")) == str(tmp_path / "mine")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    assert paths.use_inductor_cache(str(tmp_path / "default")) == str(tmp_path / "default")
    assert (tmp_path / "default").is_dir()
    assert paths.child_environment(TOOL_HOME="/x")["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "default")
