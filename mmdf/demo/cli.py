"""`mmdf demo-data`: write the synthetic FFDV-layout demo dataset."""

from __future__ import annotations

import argparse

HELP = "write the synthetic FFDV-layout demo dataset"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("mmdf demo-data is not built yet")
