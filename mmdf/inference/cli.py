"""`mmdf predict`: score new clips with a trained run."""

from __future__ import annotations

import argparse

HELP = "score new clips with a trained run"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("mmdf predict is not built yet")
