"""`mmdf train`: train the audio or visual branch with k-fold OOF."""

from __future__ import annotations

import argparse

HELP = "train the audio or visual branch with k-fold OOF"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("mmdf train is not built yet")
