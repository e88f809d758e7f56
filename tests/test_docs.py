"""Documented commands: the shell blocks of docs/workflow.md and the documented export.sh / standin_base.sh lines
(issue 20: offline build, no ``--gpus none``, a work folder outside the repository, ``make test``'s load)."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from testutils import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def bash_blocks(path: Path) -> list[str]:
    """The ```bash blocks of a markdown file, continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S)
    return [b.replace("\\\n", " ") for b in blocks]


def documented(script: str) -> list[list[str]]:
    """Every documented invocation of ``script`` (e.g. './export.sh') in README.md and docs/, as argument lists."""
    found = []
    for path in DOCS:
        for block in bash_blocks(path):
            for line in block.splitlines():
                code = line.split("  #")[0]
                if script in code:
                    words = shlex.split(code[code.index(script):])
                    found.append(words[1:])
    return found


def test_documented_export_and_standin_options_exist() -> None:
    """Each documented ./export.sh and scripts/standin_base.sh line parses (unknown options exit 2 before --help)."""
    for script, path in (("./export.sh", REPO / "export.sh"), ("scripts/standin_base.sh",
                                                                REPO / "scripts" / "standin_base.sh")):
        calls = documented(script)
        assert calls, f"no documented {script} line"
        for args in calls:
            proc = subprocess.run(["bash", str(path), *args, "--help"], capture_output=True, text=True, timeout=30)
            assert proc.returncode == 0, (script, args, proc.stderr)
    assert any("--base-image" in args for args in documented("./export.sh"))


def test_no_doc_says_gpus_none() -> None:
    for path in DOCS:
        assert "--gpus none" not in path.read_text().replace("`--gpus none` is refused", ""), path


def test_workflow_step_1_runs_without_bad_ids(tmp_path: Path) -> None:
    """The hold-out block of docs/workflow.md §1 works when no bad_ids.txt exists yet (it used to fail)."""
    (block,) = [b for b in bash_blocks(REPO / "docs" / "workflow.md") if "exclude_ids.txt" in b and "cat" in b]
    (tmp_path / "heldout_ids.txt").write_text("1HNA001\n")
    elsewhere = tmp_path / "cwd"  # relative paths land here, not in the repository
    elsewhere.mkdir()
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block], capture_output=True, text=True, timeout=30,
                          cwd=elsewhere, env={"WORK": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "exclude_ids.txt").read_text() == "1HNA001\n"


def test_workflow_writes_outside_the_repository() -> None:
    """The workflow activates .venv before pip, keeps its outputs under $WORK, and routing's .bak is ignored."""
    text = (REPO / "docs" / "workflow.md").read_text()
    blocks = "\n".join(bash_blocks(REPO / "docs" / "workflow.md"))
    assert "source .venv/bin/activate" in blocks and blocks.index("activate") < blocks.index("pip install")
    for name in ("heldout/", "sct/", "eval/", "heldout_ids.txt", "bad_ids.txt", "exclude_ids.txt", "dist"):
        for match in re.finditer(re.escape(name), blocks):
            before = blocks[max(0, match.start() - 40):match.start()]
            assert "$WORK" in before or "$H" in before or "Task1/HN/" in before, (name, before)
    assert "$WORK" in text
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert "resources/models.json.bak" in ignored or "/resources/models.json.bak" in ignored


def test_gpu_claims_without_a_result_file_are_marked() -> None:
    """The README's H200 row and training.md's H200 step table cite no committed result file: each says so."""
    readme = (REPO / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| NVIDIA H200"))
    assert "†" in row and "† The H200 row is a **single development measurement with no result file kept**" in readme
    training = (REPO / "docs" / "training.md").read_text()
    table_end = training.index("| ResidualUNetUpsample (`synthctResUNetPlans`)")
    assert "single development measurement with no result file kept" in training[table_end:table_end + 600]


def test_make_test_time_states_the_load() -> None:
    line = next(line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("make test"))
    assert re.search(r"\d+(\.\d+)? min", line) and "load" in line, line
