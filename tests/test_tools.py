"""Every script under tools/ is a working command-line entry point (its --help runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "tools").glob("*.py")))
def test_tool_help(script):
    args = [sys.executable, str(REPO / "tools" / script), "--help"]
    out = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout
