"""The import graph of ``src/synthct`` follows the layers (README, "Repository layout"): contracts → io →
preprocessing → network → inference → challenge, with losses, training and metrics beside them and ``dose`` as a side
package (contracts, io, metrics; imported only by cli); no module imports a layer above its own, root modules import
only root modules, the inference package keeps its sampler/aggregator split, only preprocessing, network and training
import nnunetv2, and the import graph has no file circle. Every import counts (function level, TYPE_CHECKING,
relative, importlib). Each rule is also run on a small forbidden fixture, so that it is known to fail.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest
from layercheck import (
    cycles,
    dynamic_violations,
    edges,
    inference_violations,
    layer_violations,
    nnunet_violations,
)
from testutils import REPO

SRC = REPO / "src"


def test_no_import_climbs_the_layers() -> None:
    bad = layer_violations(SRC)
    assert not bad, "\n".join(bad)


def test_inference_keeps_its_split() -> None:
    bad = inference_violations(SRC)
    assert not bad, "\n".join(bad)


def test_only_three_layers_import_nnunetv2() -> None:
    bad = nnunet_violations(SRC)
    assert not bad, "\n".join(bad)


def test_every_dynamic_import_is_readable() -> None:
    bad = dynamic_violations(SRC)
    assert not bad, "\n".join(bad)


def test_the_import_graph_has_no_file_circle() -> None:
    found = cycles(SRC)
    assert not found, "\n".join(" -> ".join(c) for c in found)


def test_the_checker_sees_the_real_graph() -> None:
    """A checker that reads nothing passes everything: it must see known edges of each kind."""
    found = {(e.source, e.target) for e in edges(SRC)}
    assert ("synthct.cli.main", "synthct.cli") in found  # importlib.import_module(f"synthct.cli.{name}")
    assert ("synthct.inference.predictor", "synthct.network.checkpoint") in found
    assert ("synthct.inference.sliding_window", "synthct.inference.budget") in found  # under TYPE_CHECKING
    assert ("synthct.challenge.algorithm", "synthct.inference.predictor") in found  # inside a function


def test_contracts_are_pure_numpy() -> None:
    for path in (SRC / "synthct" / "contracts").glob("*.py"):
        tree = ast.parse(path.read_text())
        roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        pure = {"__future__", "dataclasses", "typing", "numpy", "synthct", "importlib", "json", "re", "collections"}
        assert roots <= pure, path


# --- each rule fails on a forbidden fixture ---------------------------------------------------------------------------

PACKAGES = ("contracts", "io", "metrics", "network", "inference", "challenge", "cli", "dose")


@pytest.fixture()
def tree(tmp_path: Path):
    """A minimal synthct tree; ``write(rel, code)`` adds a module to it. Returns (src root, write)."""
    pkg = tmp_path / "synthct"
    for name in ("", *PACKAGES):
        (pkg / name).mkdir(parents=True, exist_ok=True)
        (pkg / name / "__init__.py").write_text("")
    for name in ("paths", "typing"):
        (pkg / f"{name}.py").write_text("import os\n")

    def write(rel: str, code: str) -> None:
        path = pkg / rel
        path.write_text(textwrap.dedent(code))

    write("io/image.py", "from synthct.contracts import x\nfrom synthct.typing import PathLike\n")
    write("challenge/algorithm.py", "from synthct.io.image import read\n")
    write("cli/main.py", "import importlib\nimportlib.import_module(f'synthct.cli.{name}')\n")
    write("inference/ensemble.py", "import torch\n")
    write("inference/sliding_window.py", "from synthct.inference.ensemble import average\n")
    return tmp_path, write


def test_fixture_tree_is_clean(tree) -> None:
    src, _ = tree
    assert not layer_violations(src) and not inference_violations(src) and not dynamic_violations(src)
    assert not cycles(src) and not nnunet_violations(src)


def test_a_relative_back_edge_fails(tree) -> None:
    src, write = tree
    write("io/reader.py", "def f():\n    from ..challenge import algorithm\n")
    (bad,) = layer_violations(src)
    assert "synthct.io.reader imports synthct.challenge.algorithm" in bad and "layer 'io'" in bad
    write("io/reader.py", "from . import image\nfrom .image import read\n")  # inside its layer: fine
    assert not layer_violations(src)


def test_a_root_module_importing_cli_fails(tree) -> None:
    src, write = tree
    write("paths.py", "from synthct.cli import main\n")
    (bad,) = layer_violations(src)
    assert "synthct.paths imports synthct.cli.main" in bad and "root module" in bad


def test_import_module_is_an_import(tree) -> None:
    src, write = tree
    write("contracts/table.py", "import importlib\nimportlib.import_module('synthct.challenge.algorithm')\n")
    (bad,) = layer_violations(src)
    assert "synthct.contracts.table imports synthct.challenge.algorithm" in bad
    write("contracts/table.py", "from importlib import import_module\nimport_module(NAMES[0])\n")
    (bad,) = dynamic_violations(src)
    assert "synthct.contracts.table imports <dynamic>" in bad


def test_a_type_checking_back_edge_fails(tree) -> None:
    src, write = tree
    write("io/image.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from synthct.cli import main\n")
    (bad,) = layer_violations(src)
    assert "synthct.io.image imports synthct.cli.main" in bad


def test_inference_rules(tree) -> None:
    src, write = tree
    write("inference/budget.py", "from synthct.inference.sliding_window import x\n")  # the old budget <-> window
    write("inference/tiling.py", "from synthct.network import build\n")
    write("inference/extra.py", "from synthct.inference import ensemble\n")
    bad = inference_violations(src)
    assert len(bad) == 3, bad
    assert "inference.budget may import only ['ensemble']" in bad[0]
    assert "inference module 'extra' is not in" in bad[1]
    assert "only inference.predictor imports other layers" in bad[2]


def test_a_cycle_fails(tree) -> None:
    src, write = tree
    write("inference/budget.py", "from synthct.inference.sliding_window import x\n")
    write("inference/sliding_window.py", "def f():\n    from synthct.inference.budget import TimeBudget\n")
    assert cycles(src) == [["synthct.inference.budget", "synthct.inference.sliding_window",
                            "synthct.inference.budget"]]


def test_nnunetv2_outside_three_layers_fails(tree) -> None:
    src, write = tree
    write("metrics/seg.py", "def f():\n    import nnunetv2.paths\n")
    (bad,) = nnunet_violations(src)
    assert "synthct.metrics.seg imports nnunetv2.paths" in bad


def test_dose_is_a_side_package_only_cli_imports(tree) -> None:
    src, write = tree
    write("dose/calc.py", "from synthct.metrics import image\nfrom synthct.io import image as io_image\n")
    write("cli/dose.py", "from synthct.dose import calc\n")
    assert not layer_violations(src)
    write("challenge/report.py", "from synthct.dose import calc\n")
    write("dose/plan.py", "from synthct.inference import ensemble\n")
    bad = layer_violations(src)
    assert len(bad) == 2 and "layer 'challenge'" in bad[0] and "layer 'dose' may import only" in bad[1], bad


def test_an_unplaced_package_fails(tree) -> None:
    src, write = tree
    (src / "synthct" / "extras").mkdir()
    write("extras/__init__.py", "from synthct.io import image\n")
    (bad,) = layer_violations(src)
    assert "package 'extras' has no place in the layers" in bad
