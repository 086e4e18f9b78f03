"""The README stays a front page, its commands are the ones CI runs, and the docs site has every page.

The site itself is built by ``mkdocs build --strict`` in ``.ci/run`` (broken
links and anchors fail it); these checks need no docs extra.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
MAX_LINES = 150
VENV = "python3 -m venv .venv && "


def _commands(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith(VENV)]


def _nav_files(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [f for item in node for f in _nav_files(item)]
    if isinstance(node, dict):
        return [f for value in node.values() for f in _nav_files(value)]
    return []


def test_readme_is_at_most_150_lines():
    assert len(README.splitlines()) <= MAX_LINES, "move the detail to a page of docs/ and link it"


def test_readme_has_the_two_set_up_commands_and_ci_runs_the_second():
    demo, tests = _commands(README)
    assert demo == 'python3 -m venv .venv && .venv/bin/pip install -e ".[dev]" && .venv/bin/mmdf demo'
    assert tests == 'python3 -m venv .venv && .venv/bin/pip install -e ".[dev]" && .venv/bin/pytest -q'
    (ci,) = _commands((REPO / ".ci" / "run").read_text())
    # CI adds only a quiet install, the docs extra (it builds the site after the tests) and the ray extra
    # (so that the Ray engine's tests run rather than skip)
    assert ci.replace("pip install -q ", "pip install ").replace('".[dev,docs,ray]"', '".[dev]"') == tests
    assert "mkdocs build --strict" in (REPO / ".ci" / "run").read_text()


def test_readme_links_point_at_files_that_exist():
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README)
    assert links, "the README links into the docs"
    missing = [link for link in links if not (REPO / link).is_file()]
    assert not missing, f"README links to missing files: {missing}"


def test_every_docs_page_is_in_the_site_navigation():
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    nav = set(_nav_files(config["nav"]))
    pages = {p.relative_to(REPO / "docs").as_posix() for p in (REPO / "docs").rglob("*.md")}
    assert pages - nav == set(), "pages no one can reach from the navigation"
    assert nav - pages == set(), "navigation entries without a page"
