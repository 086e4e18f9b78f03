"""`mmdf demo-data`: write the synthetic FFDV-layout demo dataset."""

from __future__ import annotations

import argparse

HELP = "write the synthetic FFDV-layout demo dataset"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", nargs="?", default="data/demo", help="output folder (default: data/demo)")
    parser.add_argument("--n-train", type=int, default=300, help="train clips (default: 300)")
    parser.add_argument("--n-val", type=int, default=100, help="val clips (default: 100)")
    parser.add_argument("--n-test", type=int, default=100, help="test clips (default: 100)")
    parser.add_argument("--seed", type=int, default=0, help="fixes names, labels and content (default: 0)")
    parser.add_argument("--workers", type=int, default=0, help="processes; 0 = all cores (default)")
    parser.add_argument("--force", action="store_true", help="rebuild even if OUT already holds this dataset")
    parser.add_argument("--preview", action="store_true", help="also write OUT/preview.png, a contact sheet")


def run(args: argparse.Namespace) -> int:
    # deferred: OpenCV, PyAV and the renderers load when the dataset is made, not for `mmdf --help`
    from mmdf.demo.dataset import make_demo_dataset
    from mmdf.demo.preview import write_preview

    out = make_demo_dataset(
        args.out, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test, seed=args.seed, workers=args.workers, force=args.force
    )
    print(f"demo dataset: {out}")
    if args.preview:
        print(f"preview: {write_preview(out)}")
    return 0
