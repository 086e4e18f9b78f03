"""`mmdf prepare`: preprocess clips into cached mel spectrograms and face crops."""

from __future__ import annotations

import argparse

HELP = "preprocess clips into cached mel spectrograms and face crops"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("mmdf prepare is not built yet")
