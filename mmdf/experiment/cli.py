"""`mmdf experiment`: run an ablation study (the variants of an experiment YAML) and compare them."""

from __future__ import annotations

import argparse

HELP = "run every variant of an experiment YAML through the pipeline and compare them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="experiment YAML, e.g. experiments/demo/audio_vflip.yaml")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="overrides for every step of every variant, e.g. data.root=/data/ffdv")
    parser.add_argument("--variants", default=None, metavar="NAME[,NAME...]",
                        help="run only these variants (the summary still lists all)")
    parser.add_argument("--force", action="store_true",
                        help="recompute the training and stacking steps (preprocessing stays cached)")
    parser.add_argument("--dry-run", action="store_true", help="print what each step would do, run nothing")
    parser.add_argument("--summary", action="store_true", help="only rewrite the summary from finished runs")


def run(args: argparse.Namespace) -> int:
    # deferred: the runner and its summary (scikit-learn, LightGBM, matplotlib) are not for `mmdf --help`
    from mmdf.experiment.runner import plan, run_experiment, select
    from mmdf.experiment.spec import load_experiment
    from mmdf.experiment.summary import write_summary

    exp = load_experiment(args.file, args.overrides)
    variants = [v for v in args.variants.split(",") if v] if args.variants else None
    if args.dry_run:
        for act in plan(exp, select(exp, variants), force=args.force):
            print(f"{act.trial:32s} {act.step:8s} {act.describe()}")
        return 0
    summary = write_summary(exp) if args.summary else run_experiment(exp, variants, force=args.force)
    print(summary.read_text())
    print(f"summary: {summary} (and summary.csv, summary.png, results.csv beside it)")
    return 0
