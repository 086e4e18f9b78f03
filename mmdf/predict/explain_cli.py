"""`mmdf explain`: a page per clip that shows where and why, for clips or a split of the run's data."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from mmdf.data.labels import load_split
from mmdf.errors import MmdfError
from mmdf.predict.explainer import report_segment_auc
from mmdf.predict.segments import SEGMENT_LABELS

HELP = "explain a trained run's scores: a page per clip (verdict, branches, timeline, faces) and segments.csv"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="a finished run folder, e.g. runs/demo")
    parser.add_argument("inputs", nargs="*", metavar="PATH",
                        help="video files, folders of them or lists of paths (as for `mmdf predict`)")
    parser.add_argument("--split", choices=("train", "val", "test"), default=None,
                        help="explain a split of the run's own data (its data.root); the data root's "
                             "segment_labels.csv, where there is one, gives the segment-level AUC")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="folder of the pages (default <run>/explain, or <run>/explain/<split>)")
    parser.add_argument("--fpr", type=float, default=None, help="decide at this stored false-positive rate")
    parser.add_argument("--segment-labels", default=None, metavar="CSV", help="manipulated spans (see predict)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    # deferred: predict loads the branches' torch and timm; `mmdf --help` and argument errors must not
    from mmdf.predict.predict import predict_clips

    if bool(args.inputs) == bool(args.split):
        raise MmdfError("give clips to explain or --split, not both (and not neither)")
    inputs, labels = list(args.inputs), args.segment_labels
    if args.split:
        inputs, found = split_inputs(args.run, args.split)
        labels = labels or found
    out = Path(args.out) if args.out else Path(args.run) / "explain" / (args.split or "")
    scores = predict_clips(args.run, inputs, out=out / "scores.csv", fpr=args.fpr, explain=out,
                           segment_labels=labels, progress=not args.no_progress)
    print(f"explained {int(scores['prob'].notna().sum())} of {len(scores)} clip(s) -> {out / 'index.html'}")
    if (out / "segment_auc.csv").is_file():
        print((out / "segment_auc.csv").read_text(encoding="utf-8").rstrip())
        if args.split:
            report = report_segment_auc(args.run, args.split, out, pd.read_csv(out / "segment_auc.csv"))
            print(f"segment-level AUC added to {report}" if report else "no report.md in the run to add it to")
    return 0


def split_inputs(run_dir: str, split: str) -> tuple[list[str], str | None]:
    """The paths of a split of the run's data, and the data root's segment labels where it has them."""
    # deferred: predict loads the branches' torch and timm; `mmdf --help` and argument errors must not
    from mmdf.predict.predict import load_run

    cfg, _ = load_run(run_dir)
    clips = load_split(cfg.data, split)
    labels = Path(cfg.data.root) / SEGMENT_LABELS
    return clips["path"].tolist(), str(labels) if labels.is_file() else None
