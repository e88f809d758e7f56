"""export.sh's own logic (arguments, the model tarball, its load check, the partial-file handling) with a stand-in
``docker`` client: ``build`` and ``save`` are recorded, and ``run`` of the load check runs process.py here with the
extracted tarball as the platform's model folder. The real engine runs it in .ci/container.sh."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

from testutils import REPO

FAKE_DOCKER = r"""#!/usr/bin/env bash
# Stand-in docker client for export.sh: records every call; `run IMAGE --check-models` runs process.py locally.
echo "$*" >> "$FAKE_DOCKER_LOG"
case $1 in
    build) exit 0 ;;
    save) printf 'image %s\n' "$2" ;;
    run)
        model= image= args=()
        shift
        while [[ $# -gt 0 ]]; do
            case $1 in
                -v) [[ $2 == *:/opt/ml/model:ro ]] && model=${2%%:/opt/ml/model:ro}; shift 2 ;;
                --rm) shift ;;
                --network) shift 2 ;;
                *) if [[ -z $image ]]; then image=$1; else args+=("$1"); fi; shift ;;
            esac
        done
        case $image in *-task1) task=mri ;; *-task2) task=cbct ;; esac
        SYNTHCT_PLATFORM_MODEL_DIR=$model SYNTHCT_TASK=$task exec "$FAKE_PYTHON" "$FAKE_APP/process.py" "${args[@]}" ;;
    *) echo "fake docker: unexpected $1" >&2; exit 3 ;;
esac
"""


def test_export_sh_writes_and_checks_the_model_tarball(tmp_path: Path) -> None:
    fake = tmp_path / "docker"
    fake.write_text(FAKE_DOCKER)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    app = tmp_path / "app-without-weights"  # process.py only: the models must come from the tarball
    app.mkdir()
    (app / "process.py").write_text((REPO / "process.py").read_text())
    log = tmp_path / "docker.log"
    env = {**os.environ, "DOCKER": str(fake), "FAKE_DOCKER_LOG": str(log), "FAKE_PYTHON": sys.executable,
           "FAKE_APP": str(app), "PYTHONPATH": str(REPO / "src"), "DOCKER_BUILD_ARGS": "--build-arg X=1"}
    out = tmp_path / "dist"
    proc = subprocess.run(["bash", str(REPO / "export.sh"), "--task", "mri", "--weights", "tarball", "--name", "t",
                           "--out", str(out)], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["model-task1.tar.gz", "t-task1.tar.gz"]  # no .partial left
    calls = log.read_text().splitlines()
    assert calls[0].startswith("build --network host --platform linux/amd64 --build-arg TASK=mri "
                               "--build-arg WEIGHTS=tarball --build-arg X=1 -t t-task1 ")
    (check,) = [c for c in calls if c.startswith("run ")]
    assert "--network none" in check and ":/opt/ml/model:ro t-task1 --device cpu --check-models" in check
    assert "loads: " in proc.stderr and "for mri/HN, mri/TH, mri/AB" in proc.stderr  # process.py's check ran
    with tarfile.open(out / "model-task1.tar.gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert "./resources/models.json" in members
    assert any(n.startswith("./weights/mri/") and n.endswith("synthct.json") for n in members)
    assert not any(n.startswith("./weights/cbct") for n in members)  # only this task's weights
    assert all(m.mode & 0o044 == 0o044 for m in members.values())  # readable by whatever user extracts it


def test_export_sh_refuses_bad_arguments() -> None:
    for args, message in ((["--weights", "both"], "--weights must be baked or tarball"),
                          (["--task", "ct"], "--task must be mri, cbct or all")):
        proc = subprocess.run(["bash", str(REPO / "export.sh"), *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and message in proc.stderr
