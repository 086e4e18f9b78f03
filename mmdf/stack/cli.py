"""`mmdf stack`: stack the branches with LightGBM and write the submission."""

from __future__ import annotations

import argparse

from mmdf.config import add_config_arguments
from mmdf.run_config import config_from_args

HELP = "stack the branches with LightGBM and write the submission"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, default="configs/stack.yaml")
    parser.add_argument("--force", action="store_true", help="redo a finished stack")


def run(args: argparse.Namespace) -> int:
    from mmdf.stack.run import REPORT_NAME, SUBMISSION_NAME, run_stack  # deferred: LightGBM and scikit-learn

    cfg = config_from_args(args)
    stack_dir = run_stack(cfg, force=args.force)
    print(f"stack outputs: {stack_dir}")
    submission = cfg.run_dir / SUBMISSION_NAME
    if submission.is_file():
        print(f"submission:    {submission}")
    print(f"report:        {cfg.run_dir / REPORT_NAME}")
    return 0
