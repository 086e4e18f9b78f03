"""`mmdf demo`: run the whole pipeline on the built-in demo data."""

from __future__ import annotations

import argparse

HELP = "run the whole pipeline (data, prepare, every branch, stack, report) on the built-in demo data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="redo every step even where its outputs exist")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the demo dataset (default 0); another seed runs in data/demo-seed<N>, "
                             "cache/demo-seed<N> and runs/demo-seed<N>")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides applied to every demo config, e.g. experiment=demo2")


def run(args: argparse.Namespace) -> int:
    from mmdf.pipeline.demo import run_demo  # deferred: the whole pipeline, which `mmdf --help` does not need

    run_demo(args.overrides, force=args.force, seed=args.seed)
    return 0
