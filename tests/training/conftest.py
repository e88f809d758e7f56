"""Fixtures of the training tests: a miniature SynthRAD2025 download cut from the committed real porcine sample,
converted, planned (tiny network) and preprocessed once per session in temporary folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from testutils import make_mini_synthrad, write_case

TINY_PATCH = (16, 32, 32)

os.environ["nnUNet_n_proc_DA"] = "0"
os.environ["nnUNet_compile"] = "f"


@pytest.fixture(scope="session")
def synthrad_factory():
    """:func:`make_mini_synthrad` and :func:`write_case` for tests that build their own download folders."""
    return make_mini_synthrad, write_case


@pytest.fixture(scope="session")
def nnunet_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("nnunet")
    dirs = {name: base / name for name in ("raw", "preprocessed", "results")}
    for path in dirs.values():
        path.mkdir()
    from synthct.paths import use_nnunet_paths

    use_nnunet_paths(dirs["raw"], dirs["preprocessed"], dirs["results"])
    return dirs


@pytest.fixture
def nnunet_env(nnunet_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The session's nnU-Net folders exported for this test (and restored afterwards)."""
    for name, env in (("raw", "nnUNet_raw"), ("preprocessed", "nnUNet_preprocessed"), ("results", "nnUNet_results")):
        monkeypatch.setenv(env, str(nnunet_dirs[name]))
    return nnunet_dirs


@pytest.fixture(scope="session")
def mini_synthrad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mini_synthrad(tmp_path_factory.mktemp("synthrad"))


@pytest.fixture(scope="session")
def planned_dataset(mini_synthrad: Path, nnunet_dirs: dict[str, Path]) -> str:
    """Converted (Dataset513), planned with a tiny plain U-Net and ResU-Net, preprocessed in-process."""
    from synthct.paths import use_nnunet_paths
    from synthct.preprocessing.dataset_conversion import convert_synthrad

    use_nnunet_paths(nnunet_dirs["raw"], nnunet_dirs["preprocessed"], nnunet_dirs["results"])
    from synthct.network.planning import plan_dataset
    from synthct.preprocessing.preprocessor import preprocess_dataset

    (report,) = convert_synthrad(mini_synthrad, nnunet_dirs["raw"], task=1, workers=2)
    plan_dataset(513, ("unet", "resunet"), num_processes=1, patch_size=TINY_PATCH, batch_size=2,
                 base_features=4, max_features=16, intensity_samples=100_000)
    preprocess_dataset(513, "synthctUNetPlans", num_processes=1)
    return report.dataset_dir.name

