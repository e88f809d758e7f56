"""The import graph of ``src/synthct`` follows the layers (README, "Repository layout"): contracts → io →
preprocessing → network → inference → challenge, with losses, training and metrics beside them; no module imports a
layer above its own (function-level imports included), and only preprocessing, network and training import nnunetv2.
"""

from __future__ import annotations

import ast

from testutils import REPO

SRC = REPO / "src" / "synthct"
#: Position of each layer; a module may import its own layer and the layers below it. Root modules (synthct/__init__,
#: typing, paths) are utilities every layer may use.
RANK = {"contracts": 0, "io": 1, "preprocessing": 2, "metrics": 2, "network": 3, "losses": 4, "inference": 4,
        "training": 5, "challenge": 6, "cli": 7, "dose": 5}
ROOT_MODULES = {"", "typing", "paths"}
NNUNET_LAYERS = {"preprocessing", "network", "training"}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else ""


def _edges() -> list[tuple[str, str, str]]:
    """(file, importing layer, imported module) for every synthct or nnunetv2 import."""
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent)
        layer = rel.parts[1] if len(rel.parts) > 2 else ""
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
            out += [(str(rel), layer, name) for name in names if name.split(".")[0] in ("synthct", "nnunetv2")]
    return out


def test_no_import_climbs_the_layers() -> None:
    bad = []
    for file, layer, module in _edges():
        if not layer or not module.startswith("synthct"):
            continue
        target = _layer(module)
        if target in ROOT_MODULES or target == layer:
            continue
        if RANK[target] > RANK[layer] or (RANK[target] == RANK[layer] and target != layer):
            bad.append(f"{file} ({layer}) imports {module} ({target})")
    assert not bad, "\n".join(bad)


def test_only_three_layers_import_nnunetv2() -> None:
    bad = [f"{file} imports {module}" for file, layer, module in _edges()
           if module.startswith("nnunetv2") and layer not in NNUNET_LAYERS]
    assert not bad, "\n".join(bad)


def test_contracts_are_pure_numpy() -> None:
    for path in (SRC / "contracts").glob("*.py"):
        tree = ast.parse(path.read_text())
        roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert roots <= {"__future__", "dataclasses", "typing", "numpy", "synthct", "importlib", "json"}, path
