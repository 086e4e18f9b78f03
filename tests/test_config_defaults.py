"""One source for every default: a shipped YAML sets only what differs from what it inherits.

What a file inherits is its bases merged, over the dataclass defaults in the
code; a key restating that value would hide a later change of the default.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mmdf.config import load_yaml_tree, merge, to_dict
from mmdf.run_config import Config

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p for p in (REPO / "configs").rglob("*.yaml") if p.name != "pipeline.yaml")


def _leaves(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            yield from _leaves(value, dotted)
        else:
            yield dotted, value


def _lookup(tree: dict, dotted: str):
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return KeyError
        node = node[part]
    return node


def _inherited(path: Path) -> dict:
    """The dataclass defaults with the file's bases merged over them."""
    raw = yaml.safe_load(path.read_text()) or {}
    tree = to_dict(Config())
    base = raw.get("base")
    for b in [base] if isinstance(base, str) else list(base or []):
        tree = merge(tree, load_yaml_tree(path.parent / b)[0])
    return tree


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_config_restates_no_inherited_value(path):
    raw = yaml.safe_load(path.read_text()) or {}
    raw.pop("base", None)
    inherited = _inherited(path)
    restated = [k for k, v in _leaves(raw) if _lookup(inherited, k) == v]
    assert not restated, f"{path.name} restates inherited values (drop them): {restated}"
