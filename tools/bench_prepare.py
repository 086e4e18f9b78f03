"""Benchmark preprocessing: audio and face routes per core against the naive ones, and `mmdf prepare`
on the demo dataset with all cores. Prints a table and writes JSON.

    python tools/bench_prepare.py [--config configs/data.yaml] [--demo-config configs/demo/data.yaml]
                                  [--n-demo 20] [--no-full] [--out runs/bench_prepare.json]
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # per-core figures: before numpy/torch load

import argparse  # noqa: E402

from mmdf.config import load_config  # noqa: E402
from mmdf.prepare.bench import format_table, run_benchmark, save  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/data.yaml", help="feature settings measured per core")
    parser.add_argument("--demo-config", default="configs/demo/data.yaml", help="dataset for the demo figures")
    parser.add_argument("--n-demo", type=int, default=20, help="demo clips for the per-core figures")
    parser.add_argument("--no-full", action="store_true", help="skip the whole-dataset `mmdf prepare` run")
    parser.add_argument("--out", default="runs/bench_prepare.json")
    args = parser.parse_args()
    results = run_benchmark(load_config(args.config), load_config(args.demo_config), args.n_demo, not args.no_full)
    print(format_table(results))
    print(f"written: {save(results, args.out)}")


if __name__ == "__main__":
    main()
