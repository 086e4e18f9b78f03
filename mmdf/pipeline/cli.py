"""`mmdf demo`: run the whole pipeline on the built-in demo data."""

from __future__ import annotations

import argparse

HELP = "run the whole pipeline on the built-in demo data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("mmdf demo is not built yet")
