"""The library's layers only look down, and nothing imports in a circle.

The import graph of ``mmdf/`` is read with :mod:`ast`: every import of an
``mmdf`` module, at the top of a file or inside a function. Each module
belongs to the first layer of :data:`LAYERS` that names it or a package
above it; a module may import its own layer and the layers before it, never
one after. A function-level import of an ``mmdf`` module (or of torch, timm,
facenet-pytorch, ray) only defers a heavy module from a light command, and
says so in a comment beside or just above it.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIBRARY = REPO / "mmdf"

# bottom to top; the order docs/architecture.md explains
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("mmdf", "mmdf.errors", "mmdf.files", "mmdf.metrics", "mmdf.figures", "mmdf.config")),
    ("data", ("mmdf.data",)),
    ("prepare", ("mmdf.prepare",)),
    ("demo", ("mmdf.demo",)),
    ("stats", ("mmdf.stats",)),
    ("train", ("mmdf.train",)),
    ("stack", ("mmdf.stack",)),
    ("run config", ("mmdf.run_config",)),
    ("predict", ("mmdf.predict",)),
    ("audit", ("mmdf.audit",)),
    ("experiment", ("mmdf.experiment",)),
    ("pipeline", ("mmdf.pipeline",)),
    # the commands: `mmdf <step>` parses its arguments, loads the run's config and calls its layer
    ("commands", ("mmdf.cli", "mmdf.__main__", "mmdf.demo.cli", "mmdf.prepare.cli", "mmdf.train.cli",
                  "mmdf.stack.cli", "mmdf.predict.cli", "mmdf.audit.cli", "mmdf.experiment.cli", "mmdf.pipeline.cli")),
]
HEAVY = ("torch", "torchvision", "timm", "facenet_pytorch", "ray")
# at most a third of the 122 function-level imports of mmdf modules before the layers were drawn
MAX_FUNCTION_IMPORTS = 40


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package)."""
    out = {}
    for path in LIBRARY.rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if package else parts)] = (path, package)
    return out


MODULES = _modules()


def _known(name: str) -> str:
    """The innermost module of ``mmdf`` that ``name`` (a module or a name inside one) is."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _targets(module: str, package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The names an import statement brings in, as dotted paths (modules, or names in modules)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        here = module.split(".") if package else module.split(".")[:-1]
        base = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
    return [f"{base}.{a.name}" for a in node.names]


def _in_function(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return True
    return False


def _imports() -> list[tuple[str, str, bool, int, Path]]:
    """(importer, imported mmdf module or heavy package, inside a function, line, file) per import."""
    found = []
    for module, (path, package) in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in _targets(module, package, node):
                top = target.split(".")[0]
                if top == "mmdf":
                    found.append((module, _known(target), _in_function(node, parents), node.lineno, path))
                elif top in HEAVY:
                    found.append((module, top, _in_function(node, parents), node.lineno, path))
    return found


IMPORTS = _imports()


def layer_of(module: str) -> int:
    best, depth = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".") and prefix != "mmdf") and len(prefix) > depth:
                best, depth = i, len(prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer of tests/test_layers.py: add it to LAYERS")
    return best


def _graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for importer, target, _, _, _ in IMPORTS:
        if target.startswith("mmdf") and target != importer:
            edges[importer].add(target)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def _commented(path: Path, line: int, lines_of: dict) -> bool:
    """A comment on the import's line, or on the nearest line above it that is not an import."""
    lines = lines_of.setdefault(path, path.read_text().splitlines())
    if "#" in lines[line - 1]:
        return True
    i = line - 2
    while i >= 0 and lines[i].strip().startswith(("from ", "import ")):
        i -= 1
    return i >= 0 and lines[i].strip().startswith("#")


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_import_cycle():
    cycles = _cycles(_graph())
    assert not cycles, "modules that import each other in a circle:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_no_import_goes_up_a_layer():
    up = sorted({f"{importer} ({LAYERS[layer_of(importer)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
                 for importer, target, _, _, _ in IMPORTS
                 if target.startswith("mmdf") and layer_of(target) > layer_of(importer)})
    assert not up, "imports that go up the layers:\n" + "\n".join(up)


def test_function_level_imports_are_few_and_say_why():
    inside = [(importer, target, line, path) for importer, target, fn, line, path in IMPORTS if fn]
    own = {(path, line) for importer, target, line, path in inside if target.startswith("mmdf")}
    assert len(own) <= MAX_FUNCTION_IMPORTS, f"{len(own)} function-level imports of mmdf modules"
    lines_of: dict = {}
    silent = sorted({f"{path.relative_to(REPO)}:{line} imports {target}" for importer, target, line, path in inside
                     if not _commented(path, line, lines_of)})
    assert not silent, "function-level imports without a comment saying why:\n" + "\n".join(silent)


@pytest.mark.parametrize("module", ["mmdf.config"])
def test_config_loader_imports_no_component(module):
    own = {t for i, t, _, _, _ in IMPORTS if i == module and t.startswith("mmdf")}
    assert own <= {"mmdf.errors", "mmdf.files"}, f"{module} imports {sorted(own)}"


def test_the_checker_sees_a_cycle_and_an_upward_import():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer_of("mmdf.train.loop") > layer_of("mmdf.prepare.cache") > layer_of("mmdf.files")
    assert layer_of("mmdf.run_config") > layer_of("mmdf.stack.run")
