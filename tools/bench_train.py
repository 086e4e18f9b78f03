"""Training/inference samples/s per branch, and the data loader alone against the model step.

    python tools/bench_train.py audio --config configs/demo/audio.yaml --synthetic 256
    python tools/bench_train.py visual --config configs/visual.yaml train.batch_size=64
(on CUDA it measures AMP off, bf16 and fp16; --synthetic N uses random cached features).
"""

import argparse
import json
import sys

import pandas as pd

from mmdf.config import add_config_arguments, config_from_args
from mmdf.errors import MmdfError
from mmdf.train.bench import bench_branch

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("branch", choices=["audio", "visual"])
    parser.add_argument("--synthetic", type=int, default=0, metavar="N", help="N random clips instead of the cache")
    parser.add_argument("--steps", type=int, default=10, help="batches per measurement")
    parser.add_argument("--out", default=None, help="also write the rows as JSON here")
    add_config_arguments(parser)
    args = parser.parse_intermixed_args()
    try:
        rows = bench_branch(config_from_args(args), args.branch, steps=args.steps, synthetic=args.synthetic)
    except MmdfError as exc:
        sys.exit(f"bench_train: error: {exc}")
    print(pd.DataFrame(rows).to_string(index=False, float_format="%.1f"))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=2, default=str)
