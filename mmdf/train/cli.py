"""`mmdf train`: train the audio or visual branch with k-fold OOF."""

from __future__ import annotations

import argparse

from mmdf.config import add_config_arguments
from mmdf.errors import MmdfError
from mmdf.run_config import config_from_args
from mmdf.train.branches import all_branches

HELP = "train one branch (audio, visual, ...) with k-fold OOF"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # One sub-parser per branch, so that `key=value` overrides may follow the options.
    branches = parser.add_subparsers(dest="branch", metavar="BRANCH", required=True)
    for name, branch in all_branches().items():
        p = branches.add_parser(name, help=f"the {name} branch ({branch.describe})",
                                description=f"{HELP}: the {name} branch ({branch.describe})")
        p.add_argument("--folds", default=None, metavar="K[,K...]",
                       help="train only these folds, e.g. 0,2 (default: all)")
        p.add_argument("--force", action="store_true",
                       help="retrain the folds from scratch instead of skipping or resuming them")
        add_config_arguments(p)


def parse_folds(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(k) for k in text.split(",") if k.strip()]
    except ValueError:
        raise MmdfError(f"--folds must be comma-separated fold numbers like 0,2; got '{text}'") from None


def run(args: argparse.Namespace) -> int:
    from mmdf.train.kfold import train_branch  # deferred: torch, which `mmdf --help` does not need

    cfg = config_from_args(args)
    out = train_branch(cfg, args.branch, folds=parse_folds(args.folds), force=args.force)
    print(f"{args.branch} branch outputs: {out}")
    return 0
