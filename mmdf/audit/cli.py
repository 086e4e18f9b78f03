"""`mmdf audit`: how a finished run's scores move under perturbations, and which cheap cue it could lean on."""

from __future__ import annotations

import argparse

from mmdf.audit.perturb import PERTURBATIONS
from mmdf.prepare.cli import add_engine_arguments, engine_of

HELP = "audit a finished run: scores under perturbations (re-encoding, resampling, silence) and shortcut probes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="a finished (stacked) run folder, e.g. runs/demo")
    parser.add_argument("--split", default="val", help="a labelled split of the run's data (default val)")
    parser.add_argument("--perturb", default=None, metavar="LIST",
                        help=f"comma-separated perturbations (default all): {','.join(PERTURBATIONS)}")
    parser.add_argument("--max-clips", type=int, default=None, metavar="N",
                        help="a stratified, seeded subset of N clips, for a quick look")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --max-clips subset (default 0)")
    parser.add_argument("--jobs", type=int, default=2, help="clips perturbed at once (default 2)")
    parser.add_argument("--workers", type=int, default=None, help="preprocessing processes (default: the run's)")
    parser.add_argument("--batch-size", type=int, default=1024, help="clips per predict chunk (default 1024)")
    add_engine_arguments(parser)
    parser.add_argument("--force", action="store_true",
                        help="drop the audit's cache and redo everything (e.g. after the clips changed)")


def run(args: argparse.Namespace) -> int:
    # deferred: scikit-learn and the predict machinery load when the audit runs, not for `mmdf --help`
    from mmdf.audit.config import AuditConfig, parse_perturbations
    from mmdf.audit.run import run_audit

    config = AuditConfig(split=args.split, perturbations=parse_perturbations(args.perturb),
                         max_clips=args.max_clips, seed=args.seed, jobs=args.jobs, workers=args.workers,
                         batch_size=args.batch_size, force=args.force, engine=engine_of(args)[0],
                         address=args.address)
    result = run_audit(args.run, config)
    final = result.table[result.table["score"] == "final"]
    worst = final.loc[final["d_auc"].idxmin()] if final["d_auc"].notna().any() else None
    print(f"audit finished in {result.seconds:.0f} s"
          + (f"; largest AUC drop of the final score: {worst['perturbation']} {worst['d_auc']:+.3f}"
             if worst is not None else ""))
    for line in result.warnings:
        print(f"WARNING {line}")
    for key, path in result.files.items():
        print(f"{key:8s} {path}")
    return 0
