"""`mmdf stack`: stack the branches with LightGBM and write the submission."""

from __future__ import annotations

import argparse

HELP = "stack the branches with LightGBM and write the submission"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("mmdf stack is not built yet")
