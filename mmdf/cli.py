"""The ``mmdf`` command: one subcommand per pipeline step.

Each subcommand lives in a small module exposing ``HELP``, ``add_arguments``
and ``run``; those modules import only light things at the top so that
``mmdf --help`` is instant, and do the heavy imports inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from mmdf import __version__
from mmdf.errors import MmdfError

# subcommand -> module; order is the order shown by --help (the pipeline's order)
COMMANDS = {
    "demo": "mmdf.pipeline.cli",
    "demo-data": "mmdf.demo.cli",
    "prepare": "mmdf.prepare.cli",
    "train": "mmdf.train.cli",
    "stack": "mmdf.stack.cli",
    "predict": "mmdf.predict.cli",
    "explain": "mmdf.predict.explain_cli",
    "audit": "mmdf.audit.cli",
    "experiment": "mmdf.experiment.cli",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmdf",
        description="Audio-video deepfake detection: prepare clips, train the audio and "
        "visual branches with k-fold OOF, stack them with LightGBM, predict.",
    )
    parser.add_argument("--version", action="version", version=f"mmdf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args._run(args) or 0)
    except MmdfError as exc:
        print(f"mmdf {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mmdf {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
