"""The import rules of ``src/synthct`` as functions of a source tree, so that ``test_layers.py`` checks the real tree
and proves each rule on a small forbidden fixture.

Every import counts: module level, inside functions, under ``TYPE_CHECKING``, relative (``from ..x import y``,
resolved against the importing file), and ``importlib.import_module`` / ``__import__`` with a literal name or an
f-string whose literal head names a package (``f"synthct.cli.{name}"`` → ``synthct.cli``). A dynamic import whose
target cannot be read from the source is itself a violation.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: Position of each layer; a module may import its own layer and the layers below it.
RANK: dict[str, int] = {"contracts": 0, "io": 1, "preprocessing": 2, "metrics": 2, "network": 3, "losses": 4,
                        "inference": 4, "training": 5, "challenge": 6, "cli": 7}
#: Side packages: what they may import, and that only ``cli`` may import them.
SIDE: dict[str, frozenset[str]] = {"dose": frozenset({"contracts", "io", "metrics"})}
#: Root modules (utilities below every layer). They may import only each other.
ROOT_MODULES: frozenset[str] = frozenset({"synthct", "synthct.typing", "synthct.paths", "synthct.openmp"})
NNUNET_LAYERS: frozenset[str] = frozenset({"preprocessing", "network", "training"})
#: Inside ``synthct.inference``: which sibling modules each module may import (the sampler/aggregator split:
#: tiling and blending are pure, the ensemble and the budget know no window, the window only stitches), and only
#: the predictor reaches other layers.
INFERENCE: dict[str, frozenset[str]] = {
    "__init__": frozenset(),
    "tiling": frozenset(),
    "blending": frozenset(),
    "grid": frozenset(),
    "cpu_threads": frozenset(),
    "ensemble": frozenset(),
    "budget": frozenset({"ensemble"}),
    "runner": frozenset({"ensemble", "budget"}),
    "accel": frozenset({"ensemble"}),
    "sliding_window": frozenset({"tiling", "blending", "ensemble", "runner", "budget"}),
    "predictor": frozenset({"accel", "cpu_threads", "grid", "sliding_window", "budget"}),
}
INFERENCE_OUTWARD: frozenset[str] = frozenset({"predictor"})
DYNAMIC = "<dynamic>"


def allowed(layer: str) -> frozenset[str]:
    """The other layers ``layer`` may import."""
    if layer in SIDE:
        return SIDE[layer]
    below = {t for t, r in RANK.items() if r < RANK[layer]}
    return frozenset(below | (set(SIDE) if layer == "cli" else set()))


@dataclass(frozen=True)
class Edge:
    """One import: ``source`` module imports ``target`` (a module name, or :data:`DYNAMIC`) at ``file:line``."""

    file: str
    line: int
    source: str
    target: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} {self.source} imports {self.target}"


def module_name(src: Path, path: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve_from(src: Path, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module of ``from ... import``: relative levels resolved against ``path``'s package."""
    if node.level == 0:
        return node.module or ""
    package = module_name(src, path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _dynamic_target(call: ast.Call) -> str | None:
    """The module an ``importlib.import_module`` / ``__import__`` call names; DYNAMIC when unreadable, None when the
    call is not an import."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name not in ("import_module", "__import__"):
        return None
    arg = call.args[0] if call.args else None
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        head = str(arg.values[0].value)
        if head.endswith(".") and head.count(".") >= 1:
            return head.rstrip(".")
    return DYNAMIC


def _targets(src: Path, path: Path, node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = _resolve_from(src, path, node)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            is_module = (src / Path(*sub.split("."))).with_suffix(".py").is_file() or (
                src / Path(*sub.split(".")) / "__init__.py").is_file()
            yield sub if is_module else base
    elif isinstance(node, ast.Call):
        target = _dynamic_target(node)
        if target is not None:
            yield target


def edges(src: Path) -> list[Edge]:
    """Every synthct / nnunetv2 import (and every unreadable dynamic import) under ``src/synthct``."""
    out = []
    for path in sorted((src / "synthct").rglob("*.py")):
        source = module_name(src, path)
        for node in ast.walk(ast.parse(path.read_text())):
            for target in _targets(src, path, node):
                if target == DYNAMIC or target.split(".")[0] in ("synthct", "nnunetv2"):
                    out.append(Edge(str(path.relative_to(src)), getattr(node, "lineno", 0), source, target))
    return out


def layer_of(module: str) -> str:
    """The layer package of a synthct module, "" for a root module; an unknown package name is returned as is."""
    parts = module.split(".")
    return "" if module in ROOT_MODULES or len(parts) < 2 else parts[1]


def layer_violations(src: Path) -> list[str]:
    """Imports that climb the layers, reach a side package from outside cli, or come from an unplaced package."""
    bad = []
    for e in edges(src):
        if not e.target.startswith("synthct"):
            continue
        layer, target = layer_of(e.source), layer_of(e.target)
        if layer == "":
            if target != "":
                bad.append(f"{e}: a root module imports only root modules {sorted(ROOT_MODULES)}")
            continue
        unplaced = [n for n in (layer, target) if n and n not in RANK and n not in SIDE]
        if unplaced:
            bad.append(f"{e}: package {unplaced[0]!r} has no place in the layers (tests/layercheck.py RANK/SIDE)")
        elif target and target != layer and target not in allowed(layer):
            bad.append(f"{e}: layer {layer!r} may import only {sorted(allowed(layer))}")
    return bad


def inference_violations(src: Path) -> list[str]:
    """Imports inside ``synthct.inference`` outside :data:`INFERENCE`, and other layers reached by a module other
    than the predictor."""
    bad = []
    for e in edges(src):
        if layer_of(e.source) != "inference" or not e.target.startswith("synthct"):
            continue
        name = e.source.split(".")[2] if e.source.count(".") >= 2 else "__init__"
        if name not in INFERENCE:
            bad.append(f"{e}: inference module {name!r} is not in tests/layercheck.py INFERENCE")
            continue
        if layer_of(e.target) == "inference":
            sibling = e.target.split(".")[2] if e.target.count(".") >= 2 else "__init__"
            if sibling != name and sibling not in INFERENCE[name]:
                bad.append(f"{e}: inference.{name} may import only {sorted(INFERENCE[name])} of inference")
        elif layer_of(e.target) != "" and name not in INFERENCE_OUTWARD:
            bad.append(f"{e}: only inference.{'/'.join(sorted(INFERENCE_OUTWARD))} imports other layers")
    return bad


def nnunet_violations(src: Path) -> list[str]:
    return [f"{e}: only {sorted(NNUNET_LAYERS)} import nnunetv2" for e in edges(src)
            if e.target.startswith("nnunetv2") and layer_of(e.source) not in NNUNET_LAYERS]


def dynamic_violations(src: Path) -> list[str]:
    return [f"{e}: a dynamic import the layer rules cannot read (use a literal module name)" for e in edges(src)
            if e.target == DYNAMIC]


def cycles(src: Path) -> list[list[str]]:
    """File circles of the synthct import graph (every import counts), each as the modules along it."""
    graph: dict[str, set[str]] = {}
    for e in edges(src):
        if e.target.startswith("synthct") and e.target != e.source:
            graph.setdefault(e.source, set()).add(e.target)
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found
