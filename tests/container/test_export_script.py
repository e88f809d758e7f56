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
    info) [[ -z ${FAKE_NO_DAEMON:-} ]] || { echo "Cannot connect to the Docker daemon" >&2; exit 1; } ;;
    image) [[ $2 == inspect && " ${FAKE_IMAGES:-} " == *" $3 "* ]] || exit 1 ;;
    import) ;;
    build) [[ -z ${FAKE_BUILD_COPY:-} ]] || cp "${@: -1}/Dockerfile" "$FAKE_BUILD_COPY" ;;
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
        case $image in *-task1) task=mri ;; *-task2) task=cbct ;; *) echo "fake run of $image"; exit 0 ;; esac
        SYNTHCT_PLATFORM_MODEL_DIR=$model SYNTHCT_TASK=$task exec "$FAKE_PYTHON" "$FAKE_APP/process.py" "${args[@]}" ;;
    *) echo "fake docker: unexpected $1" >&2; exit 3 ;;
esac
"""


def _fake_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment for export.sh / standin_base.sh with the stand-in docker client (calls logged to docker.log)."""
    fake = tmp_path / "docker"
    fake.write_text(FAKE_DOCKER)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    app = tmp_path / "app-without-weights"  # process.py only: the models must come from the tarball
    app.mkdir(exist_ok=True)
    (app / "process.py").write_text((REPO / "process.py").read_text())
    return {**os.environ, "DOCKER": str(fake), "FAKE_DOCKER_LOG": str(tmp_path / "docker.log"),
            "FAKE_PYTHON": sys.executable, "FAKE_APP": str(app), "PYTHONPATH": str(REPO / "src"), **extra}


def test_export_sh_writes_and_checks_the_model_tarball(tmp_path: Path) -> None:
    env = _fake_env(tmp_path, DOCKER_BUILD_ARGS="--build-arg X=1")
    log = tmp_path / "docker.log"
    out = tmp_path / "dist"
    proc = subprocess.run(["bash", str(REPO / "export.sh"), "--task", "mri", "--weights", "tarball", "--name", "t",
                           "--out", str(out)], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["model-task1.tar.gz", "t-task1.tar.gz"]  # no .partial left
    calls = log.read_text().splitlines()
    assert calls[0] == "info"  # the daemon is checked first
    assert calls[1].startswith("build --network host --platform linux/amd64 --build-arg TASK=mri "
                               "--build-arg WEIGHTS=tarball --build-arg X=1 -t t-task1 ")
    # the bundled routing serves every MRI region with the demo model: one WARNING line for the task, at the end
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("export.sh: WARNING: DEMO models")]
    assert len(warnings) == 1, proc.stderr
    assert warnings[0].startswith("export.sh: WARNING: DEMO models serve mri/HN, mri/TH, mri/AB (")
    assert warnings[0].endswith("porcine-demo): not SynthRAD2025 models; route trained ones (synthct route) before "
                                "uploading")
    assert proc.stderr.rstrip().splitlines()[-1] == warnings[0]
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


def test_export_sh_base_image_and_no_daemon(tmp_path: Path) -> None:
    """--base-image IMAGE becomes --build-arg BASE_IMAGE=IMAGE and must exist locally; no daemon: one clear line."""
    script = ["bash", str(REPO / "export.sh"), "--task", "cbct", "--name", "t", "--out", str(tmp_path / "dist")]
    proc = subprocess.run([*script, "--base-image", "standin:1"], capture_output=True, text=True, timeout=120,
                          env=_fake_env(tmp_path))
    assert proc.returncode == 1 and "export.sh: --base-image 'standin:1' is not in the local image store" in proc.stderr
    assert "scripts/standin_base.sh --tag standin:1" in proc.stderr
    proc = subprocess.run([*script, "--base-image", "standin:1"], capture_output=True, text=True, timeout=900,
                          env=_fake_env(tmp_path, FAKE_IMAGES="standin:1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (build,) = [c for c in (tmp_path / "docker.log").read_text().splitlines() if c.startswith("build ")]
    assert build.startswith("build --network host --platform linux/amd64 --build-arg TASK=cbct --build-arg "
                            "WEIGHTS=baked --build-arg BASE_IMAGE=standin:1 -t t-task2 ")
    assert "WARNING: building on the local base image standin:1" in proc.stderr
    proc = subprocess.run(script, capture_output=True, text=True, timeout=60,
                          env=_fake_env(tmp_path, FAKE_NO_DAEMON="1"))
    assert proc.returncode == 1 and "export.sh: no Docker daemon answers" in proc.stderr
    assert not (tmp_path / "dist" / "t-task2.tar.gz.partial").exists()


def test_standin_base_sh_builds_the_documented_stand_in(tmp_path: Path) -> None:
    """scripts/standin_base.sh (docs/container.md §4) with stand-in debootstrap, chroot and docker: the rootfs is
    cached, imported, and the stand-in Dockerfile installs the given CPU torch wheel under the requested tag."""
    tools = tmp_path / "tools"
    tools.mkdir()
    for name, body in (("debootstrap", 'mkdir -p "${@: -2:1}/etc" && echo "$*" > "${@: -2:1}/etc/args"'),
                       ("chroot", "exit 0")):
        (tools / name).write_text(f"#!/usr/bin/env bash\n{body}\n")
        (tools / name).chmod(0o755)
    wheel = tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    wheel.write_bytes(b"wheel")
    copy = tmp_path / "standin.Dockerfile"
    env = _fake_env(tmp_path, DEBOOTSTRAP=str(tools / "debootstrap"), CHROOT=str(tools / "chroot"),
                    DEBIAN_MIRROR="http://mirror.example/debian", FAKE_BUILD_COPY=str(copy))
    cmd = ["bash", str(REPO / "scripts" / "standin_base.sh"), "--tag", "standin:t", "--cache", str(tmp_path / "cache"),
           "--torch-wheel", str(wheel)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (rootfs,) = (tmp_path / "cache").glob("bookworm-minbase-*.tar")
    with tarfile.open(rootfs) as tar:
        assert "bookworm" in tar.extractfile("./etc/args").read().decode()  # type: ignore[union-attr]
    calls = (tmp_path / "docker.log").read_text().splitlines()
    assert [c.split()[0] for c in calls] == ["info", "import", "build", "run"]
    assert calls[2].startswith("build --network host -t standin:t ")
    assert calls[3].startswith("run --rm --network none standin:t python")
    dockerfile = copy.read_text()
    assert dockerfile.startswith("FROM local/bookworm-python\n") and f"/mnt/wheel/{wheel.name}" in dockerfile
    assert "./export.sh --base-image standin:t" in proc.stdout
    proc = subprocess.run([*cmd[:-1], str(tmp_path / "torch-2.13.0-cp311-none.whl")], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 1 and "no such file" in proc.stderr
