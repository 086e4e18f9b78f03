"""`mmdf predict`: score new clips with a trained run."""

from __future__ import annotations

import argparse

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
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    from mmdf.prepare.cli import add_engine_arguments

    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mmdf.predict.output import verdict
    from mmdf.predict.predict import predict_clips
    from mmdf.prepare.cli import engine_of

    out = args.out or ("scores.jsonl" if args.fmt == "json" else "scores.csv")
    scores = predict_clips(args.run, args.inputs, batch_size=args.batch_size, workers=args.workers, out=out,
                           fmt=args.fmt, resume=args.resume, cache_dir=args.cache, fpr=args.fpr,
                           recursive=args.recursive, progress=not args.no_progress,
                           engine=engine_of(args))
    unscored = scores["prob"].isna()
    counts = scores.loc[unscored, "status"].value_counts()
    print(f"scored {int((~unscored).sum())} of {len(scores)} clip(s) -> {out}"
          + (f" (not scored: {', '.join(f'{s} {n}' for s, n in counts.items())})" if unscored.any() else ""))
    if len(scores) == 1:
        print(verdict(scores.iloc[0]))
    return 0
