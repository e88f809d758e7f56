"""The container image: static Dockerfile checks (no engine needed) and checks of the built images (marker ``docker``).

The docker-marked tests need a running engine and the images ``$SYNTHCT_IMAGE_NAME-task1`` / ``-task2`` (default
``synthct``) built with the smoke-test models: ``.ci/container.sh`` builds them and then runs
``pytest -m docker tests/container``. Selected without an engine or without the images, they fail (no skip).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
from testutils import REPO

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
BASE_IMAGE = "python:3.11-slim"  # the tag CI's stand-in provides (docs/container.md)
ENTRYPOINT = ["python", "-m", "process"]
APP = "/opt/app"
IMAGES = {"mri": "task1", "cbct": "task2"}
#: grand-challenge's sandbox, as in the template's test.sh and .ci/container.sh (no --gpus on CI).
GC_FLAGS = ["--network", "none", "--memory", "4g", "--memory-swap", "4g", "--cap-drop", "ALL", "--security-opt",
            "no-new-privileges", "--pids-limit", "256", "--shm-size", "128m", "--read-only", "--tmpfs",
            "/tmp:rw,nosuid,size=1g"]


# --- static checks ----------------------------------------------------------------------------------------------------

def _parse_minimal(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, value) pairs: comments dropped, backslash continuations joined (enough for our Dockerfile)."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        instruction, _, value = full.partition(" ")
        out.append((instruction.upper(), value.strip()))
    return out


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, parsed by dockerfile-parse when installed, else by :func:`_parse_minimal`."""
    try:
        from dockerfile_parse import DockerfileParser
    except ImportError:
        return _parse_minimal(DOCKERFILE.read_text())
    parser = DockerfileParser(path=str(DOCKERFILE))
    return [(item["instruction"].upper(), item["value"].strip()) for item in parser.structure
            if item["instruction"].upper() != "COMMENT"]


def global_args() -> dict[str, str]:
    """The ARGs before the first FROM (usable in FROM lines) with their defaults."""
    result = {}
    for instruction, value in instructions():
        if instruction == "FROM":
            break
        assert instruction == "ARG", f"only ARG may come before the first FROM, got {instruction} {value}"
        name, _, default = value.partition("=")
        result[name] = default
    return result


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction, value in instructions():
        if instruction == "FROM":
            result.append([])
        if result:  # the global ARGs before the first FROM belong to no stage
            result[-1].append((instruction, value))
    assert result, "the Dockerfile has no FROM"
    return result


def copies(stage: list[tuple[str, str]]) -> list[tuple[list[str], list[str], str]]:
    """(flags, sources, destination) of each COPY of a stage."""
    out = []
    for instruction, value in stage:
        if instruction == "COPY":
            words = shlex.split(value)
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            out.append((flags, paths[:-1], paths[-1]))
    return out


def test_every_stage_uses_the_stand_in_tag() -> None:
    """Every stage starts FROM ${BASE_IMAGE}, whose default is the tag CI's stand-in provides (export.sh
    --base-image replaces it)."""
    froms = [s[0][1].split() for s in stages()]
    assert froms and all(f[0] == "${BASE_IMAGE}" for f in froms), froms
    assert global_args() == {"BASE_IMAGE": BASE_IMAGE}


def test_entrypoint_is_exec_form_process_py() -> None:
    final = stages()[-1]
    entrypoints = [v for i, v in final if i == "ENTRYPOINT"]
    assert entrypoints, "no ENTRYPOINT in the final stage"
    assert json.loads(entrypoints[-1]) == ENTRYPOINT  # JSON array = exec form: signals reach Python, no shell
    workdirs = [v for i, v in final if i == "WORKDIR"]
    assert workdirs and workdirs[-1] == APP
    assert not [v for i, v in final if i == "CMD"]


def test_runs_as_a_non_root_user() -> None:
    users = [v for i, v in stages()[-1] if i == "USER"]
    assert users, "the final stage sets no USER (the image would run as root)"
    name = users[-1].split(":")[0]
    assert name not in ("root", "0")


def test_copies_process_requirements_package_weights_and_resources() -> None:
    *builders, final = stages()
    final_copies = copies(final)
    sources = {src.rstrip("/") for _, srcs, _ in final_copies for src in srcs}
    assert {"process.py", "requirements.txt", "pyproject.toml", "src"} <= sources
    assert any(dst.rstrip("/") == APP for _, srcs, dst in final_copies if "process.py" in srcs)
    # weights/ and resources/ go through the task-selecting stage into /opt/app
    builder_sources = {src.rstrip("/") for stage in builders for _, srcs, _ in copies(stage) for src in srcs}
    assert {"weights", "resources"} <= builder_sources
    from_builder = [dst for flags, _, dst in final_copies if any(f.startswith("--from=") for f in flags)]
    assert from_builder and all(dst.rstrip("/") == APP for dst in from_builder)


def test_nothing_is_baked_under_tmp_and_task_is_a_build_argument() -> None:
    for stage in stages():
        for _, _, dst in copies(stage):
            assert not dst.startswith("/tmp"), dst  # grand-challenge mounts an empty /tmp
    final_args = [v for i, v in stages()[-1] if i == "ARG"]
    assert any(re.fullmatch(r"TASK(=mri)?", a) for a in final_args)
    assert any(a.startswith("TORCH_INDEX_URL") for a in final_args)


def _final_args() -> dict[str, str]:
    return dict(a.partition("=")[::2] for a in (v for i, v in stages()[-1] if i == "ARG"))


def test_default_torch_is_a_pinned_cuda_12_build() -> None:
    """grand-challenge's driver is undocumented: a CUDA 12.x torch (cu126: driver >= 525, T4 included), the pin of
    requirements.txt (never 2.9.*, which nnunetv2 2.8.1 refuses), recorded in a label the build checks."""
    args = _final_args()
    pin = re.search(r"^torch==(\S+)$", (REPO / "requirements.txt").read_text(), re.M).group(1)
    assert args["TORCH_VERSION"] == pin and not pin.startswith("2.9.")
    assert re.fullmatch(r"cu12\d", args["TORCH_CUDA"]), args["TORCH_CUDA"]
    assert args["TORCH_INDEX_URL"] == "auto"  # = https://download.pytorch.org/whl/$TORCH_CUDA
    labels = " ".join(v for i, v in stages()[-1] if i == "LABEL")
    assert 'synthct.torch="${TORCH_VERSION}+${TORCH_CUDA}"' in labels
    runs = " ".join(v for i, v in stages()[-1] if i == "RUN")
    assert "https://download.pytorch.org/whl/$TORCH_CUDA" in runs and "torchvision==" in runs
    assert "is not the TORCH_CUDA build" in runs


def test_weights_mode_and_time_budget_defaults() -> None:
    args = _final_args()
    assert args["WEIGHTS"] == "baked"
    envs = " ".join(v for i, v in stages()[-1] if i == "ENV")
    budget = int(re.search(r"SYNTHCT_TIME_BUDGET=(\d+)", envs).group(1))
    assert 0 < budget <= 20 * 60 - 180  # a margin under the platform's default 20-min job limit
    assert "SYNTHCT_TASK=${TASK}" in envs
    runs = " ".join(v for i, v in stages()[-1] if i == "RUN")
    assert "/opt/ml/model" in runs and "--check-models" in runs


def test_dockerignore_whitelists_exactly_what_the_dockerfile_copies() -> None:
    lines = [ln.strip() for ln in DOCKERIGNORE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    copied = {src.rstrip("/") for stage in stages() for flags, srcs, _ in copies(stage)
              if not any(f.startswith("--from=") for f in flags) for src in srcs}
    assert copied | {"Dockerfile"} == allowed


def test_scripts_are_executable_and_strict() -> None:
    for path in (REPO / "export.sh", REPO / ".ci" / "container.sh"):
        assert os.access(path, os.X_OK), f"{path} is not executable"
        assert "set -euo pipefail" in path.read_text()


# --- checks of the built images (need an engine) ------------------------------------------------------------------

def _docker() -> str:
    exe = os.environ.get("DOCKER", "docker")
    if shutil.which(exe) is None:
        pytest.fail(f"docker client {exe!r} not found (docker tests run in .ci/container.sh)")
    return exe


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_docker(), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def engine() -> str:
    proc = _run("version", "--format", "{{.Server.Version}}", timeout=60)
    if proc.returncode != 0:
        pytest.fail(f"no Docker engine reachable (DOCKER_HOST={os.environ.get('DOCKER_HOST')}): {proc.stderr.strip()}")
    return proc.stdout.strip()


def image_name(task: str) -> str:
    return f"{os.environ.get('SYNTHCT_IMAGE_NAME', 'synthct')}-{IMAGES[task]}"


@pytest.fixture(scope="module")
def image_configs(engine: str) -> dict[str, dict]:
    configs = {}
    for task in IMAGES:
        proc = _run("image", "inspect", image_name(task))
        if proc.returncode != 0:
            pytest.fail(f"image {image_name(task)} not found: build it first (.ci/container.sh). {proc.stderr.strip()}")
        configs[task] = json.loads(proc.stdout)[0]["Config"]
    return configs


def _checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_output", REPO / "scripts" / "check_output.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _gc_run(image: str, input_dir: Path, output_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    output_dir.mkdir(parents=True, exist_ok=True)
    output_dir.chmod(0o777)
    return _run("run", "--rm", *GC_FLAGS, *extra, "-v", f"{input_dir}:/input:ro", "-v", f"{output_dir}:/output", image)


def _scratch(name: str) -> Path:
    """A host folder the daemon can bind-mount (pytest's tmp_path may sit on a path the daemon cannot see)."""
    root = Path(os.environ.get("SYNTHCT_DOCKER_SCRATCH", "/tmp")) / f"synthct-docker-test-{os.getpid()}" / name
    shutil.rmtree(root, ignore_errors=True)
    return root


@pytest.mark.docker
@pytest.mark.parametrize("task", list(IMAGES))
def test_image_config(task: str, image_configs: dict[str, dict]) -> None:
    config = image_configs[task]
    assert config["User"] not in ("", "root", "0")
    assert config["Entrypoint"] == ENTRYPOINT
    assert config["WorkingDir"] == APP
    assert config["Labels"]["synthct.task"] == task


@pytest.mark.docker
@pytest.mark.parametrize("task", list(IMAGES))
def test_image_holds_only_its_own_task_models(task: str, image_configs: dict[str, dict]) -> None:
    proc = _run("run", "--rm", "--network", "none", "--entrypoint", "python", image_name(task), "-c",
                "import json, os; print(json.dumps([sorted(os.listdir('/opt/app/weights')), "
                "os.access('/opt/app/weights', os.W_OK)]))")
    assert proc.returncode == 0, proc.stderr
    folders, writable = json.loads(proc.stdout)
    assert folders == [task]
    assert writable is False  # weights are root-owned, read-only for the runtime user


@pytest.mark.docker
def test_task1_image_rejects_a_task2_case(image_configs: dict[str, dict]) -> None:
    out = _scratch("wrong-task")
    proc = _gc_run(image_name("mri"), REPO / "test" / "cbct" / "input", out)
    assert proc.returncode == 1, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if " ERROR " in ln]
    assert len(errors) == 1 and "cbct" in errors[0], proc.stderr
    assert not any(p.is_file() for p in out.rglob("*"))
    shutil.rmtree(out.parent, ignore_errors=True)


@pytest.mark.docker
def test_task1_image_runs_as_an_arbitrary_uid(image_configs: dict[str, dict]) -> None:
    """Some platforms start containers as another non-root UID: the packages must still import, /tmp suffice."""
    test = REPO / "test" / "mri"
    out = _scratch("uid")
    proc = _gc_run(image_name("mri"), test / "input", out, "--user", "4242:4242")
    assert proc.returncode == 0, proc.stderr
    problems = _checker().check(test / "input", out, test / "expected_output.json")
    assert problems == []
    shutil.rmtree(out.parent, ignore_errors=True)


@pytest.mark.docker
@pytest.mark.parametrize("task", list(IMAGES))
def test_torch_label_matches_the_installed_torch(task: str, image_configs: dict[str, dict]) -> None:
    label = image_configs[task]["Labels"]["synthct.torch"]
    proc = _run("run", "--rm", "--network", "none", "--entrypoint", "python", image_name(task), "-c",
                "import torch; print(torch.__version__)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == label


@pytest.mark.docker
def test_startup_line_and_no_cpu_fallback_with_visible_nvidia_devices(image_configs: dict[str, dict]) -> None:
    """NVIDIA_VISIBLE_DEVICES set (as the NVIDIA runtime does) but no usable CUDA: exit 2 at once, nothing written."""
    out = _scratch("nvidia-visible")
    proc = _gc_run(image_name("mri"), REPO / "test" / "mri" / "input", out, "-e", "NVIDIA_VISIBLE_DEVICES=all")
    assert proc.returncode == 2, proc.stderr
    assert re.search(r"INFO synthct\.challenge\.diagnostics: torch \S+ \| CUDA build \S+ \| cuDNN \S+ \| device cpu"
                     r" \| driver ", proc.stderr), proc.stderr
    assert "NVIDIA device(s) visible (NVIDIA_VISIBLE_DEVICES=all) but CUDA is unusable" in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if " ERROR " in ln]
    assert len(errors) == 1, proc.stderr
    assert not any(p.is_file() for p in out.rglob("*"))
    shutil.rmtree(out.parent, ignore_errors=True)
