"""`mmdf predict`: score new clips with a trained run."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmdf.prepare.cli import add_engine_arguments, engine_of

HELP = "score new clips with a trained run"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="a finished run folder, e.g. runs/baseline")
    parser.add_argument("inputs", nargs="+", metavar="PATH",
                        help="video files (.mp4 .mov .m4v .mkv .webm .avi ...), folders of them, text lists of "
                             "paths (one a line), or - for a list on standard input")
    parser.add_argument("--out", default=None,
                        help="output file, written as clips are scored (default scores.csv, or scores.jsonl "
                             "with --format json)")
    parser.add_argument("--format", dest="fmt", choices=("csv", "json"), default=None,
                        help="csv (default) or json (JSON lines); by default taken from --out's suffix")
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows --out already holds for these inputs and score the rest")
    parser.add_argument("--recursive", action="store_true", help="descend into sub-folders of folder inputs")
    parser.add_argument("--fpr", type=float, default=None,
                        help="decide at this stored false-positive rate (default: the run's stack.default_fpr)")
    parser.add_argument("--cache", default=None, metavar="DIR",
                        help="feature cache of predict (default <run>/predict_cache; never the training cache)")
    parser.add_argument("--batch-size", type=int, default=256,
                        help="clips prepared, scored and written per chunk (default 256)")
    parser.add_argument("--workers", type=int, default=None, help="preprocessing processes (default: the run's)")
    parser.add_argument("--segments", action="store_true",
                        help="also write segments.csv beside --out: each scored clip's parts in time per modality "
                             "(video_name, modality, start_s, end_s, score)")
    parser.add_argument("--explain", default=None, metavar="DIR",
                        help="write a self-contained HTML page per scored clip (verdict, branches, timeline, "
                             "faces) and index.html to DIR, with DIR/segments.csv")
    parser.add_argument("--segment-labels", default=None, metavar="CSV",
                        help="manipulated spans (video_name, modality, start_s, end_s, fake; the demo's "
                             "segment_labels.csv): segment-level AUC per modality")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    # deferred: the predict machinery (scikit-learn, LightGBM; torch when a branch scores) is not for `mmdf --help`
    from mmdf.predict.output import verdict
    from mmdf.predict.predict import predict_clips

    out = args.out or ("scores.jsonl" if args.fmt == "json" else "scores.csv")
    scores = predict_clips(args.run, args.inputs, batch_size=args.batch_size, workers=args.workers, out=out,
                           fmt=args.fmt, resume=args.resume, cache_dir=args.cache, fpr=args.fpr,
                           recursive=args.recursive, progress=not args.no_progress,
                           segments=Path(out).parent / "segments.csv" if args.segments else None,
                           explain=args.explain, segment_labels=args.segment_labels,
                           engine=engine_of(args))
    unscored = scores["prob"].isna()
    counts = scores.loc[unscored, "status"].value_counts()
    print(f"scored {int((~unscored).sum())} of {len(scores)} clip(s) -> {out}"
          + (f" (not scored: {', '.join(f'{s} {n}' for s, n in counts.items())})" if unscored.any() else ""))
    if args.segments:
        print(f"segments -> {Path(out).parent / 'segments.csv'}")
    if args.explain:
        print(f"pages -> {Path(args.explain) / 'index.html'}")
    if len(scores) == 1:
        print(verdict(scores.iloc[0]))
    return 0
