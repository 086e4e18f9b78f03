"""Shared fixtures: the repository root and the real media in ../shared/realdata."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REALDATA = REPO_ROOT.parent / "shared" / "realdata"

# Keep the suite fast and deterministic on small CPUs.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"real media folder absent: {REALDATA} (the project's ../shared/realdata)")
    return REALDATA


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> Path:
    """A folder with a tiny demo dataset in data/ (cache/ and runs/ beside it are shared by the tests)."""
    from demo_factory import TINY_DEMO_SIZES
    from mmdf.demo.dataset import make_demo_dataset

    root = tmp_path_factory.mktemp("tiny_demo")
    make_demo_dataset(root / "data", **TINY_DEMO_SIZES, workers=1)
    return root
