"""Every script under tools/ and benchmarks/ is a working command-line entry point (its --help runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


SCRIPTS = sorted(str(p.relative_to(REPO)) for folder in ("tools", "benchmarks") for p in (REPO / folder).glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_tool_help(script):
    args = [sys.executable, str(REPO / script), "--help"]
    out = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout
