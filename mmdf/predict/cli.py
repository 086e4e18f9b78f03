"""`mmdf predict`: score new clips with a trained run."""

from __future__ import annotations

import argparse

HELP = "score new clips with a trained run"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="a finished run folder, e.g. runs/baseline")
    parser.add_argument("inputs", nargs="+", metavar="PATH",
                        help=".mp4 files, folders of them, or a text list of paths (one a line)")
    parser.add_argument("--out", default="scores.csv", help="output CSV (default scores.csv)")
    parser.add_argument("--batch-size", type=int, default=256, help="clips prepared and scored per chunk")
    parser.add_argument("--workers", type=int, default=None, help="preprocessing processes (default: the run's)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mmdf.predict.predict import predict_clips

    scores = predict_clips(args.run, args.inputs, batch_size=args.batch_size, workers=args.workers)
    from mmdf.files import atomic_write

    out = Path(args.out)
    with atomic_write(out) as tmp:
        scores.to_csv(tmp, index=False)
    bad = scores["status"] != "ok"
    print(f"scored {len(scores)} clip(s) -> {out}"
          + (f" ({int(bad.sum())} with status other than ok: "
             f"{', '.join(f'{s} {n}' for s, n in scores.loc[bad, 'status'].value_counts().items())})"
             if bad.any() else ""))
    return 0
