"""The house rules that a reader relies on, checked over the library's source.

No function in ``mmdf/`` is longer than 60 lines or nests blocks deeper than
3, and nothing outside a branch's own module names a branch.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIBRARY = sorted((REPO / "mmdf").rglob("*.py"))
MAX_LINES = 60
MAX_DEPTH = 3
NESTING = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try, ast.Match)


def _functions():
    for path in LIBRARY:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path.relative_to(REPO), node


def _depth(node: ast.AST, level: int = 0) -> int:
    """Deepest nesting of blocks inside ``node`` (a nested function starts again at 0)."""
    deepest = level
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(child, ast.If) and isinstance(node, ast.If) and child in node.orelse:
            deepest = max(deepest, _depth(child, level))  # elif: the same level
        else:
            deepest = max(deepest, _depth(child, level + isinstance(child, NESTING)))
    return deepest


def test_no_function_over_sixty_lines():
    long = [f"{p}:{f.lineno} {f.name} ({f.end_lineno - f.lineno + 1} lines)"
            for p, f in _functions() if f.end_lineno - f.lineno + 1 > MAX_LINES]
    assert not long, "functions over 60 lines:\n" + "\n".join(long)


def test_no_function_nested_deeper_than_three():
    deep = [f"{p}:{f.lineno} {f.name} (depth {_depth(f)})" for p, f in _functions() if _depth(f) > MAX_DEPTH]
    assert not deep, "functions nested deeper than 3:\n" + "\n".join(deep)


def test_nothing_outside_a_branch_module_names_a_branch():
    pattern = re.compile(r'== *"(audio|visual)"|getattr\([^)]*branch')
    hits = [f"{p.relative_to(REPO)}:{i}: {line.strip()}" for p in LIBRARY
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, "\n".join(hits)
