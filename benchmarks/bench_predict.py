"""`mmdf predict` throughput: clips/s of a first and a second call, and which step the time goes to.

    python benchmarks/bench_predict.py --run runs/demo data/demo/testset      # a finished run, its clips
    python benchmarks/bench_predict.py --full-size ../shared/realdata/*.mp4     # the full-size configs

With ``--full-size`` it first makes a small run with the full-size configs
(``configs/pipeline.yaml``: EfficientNet-B1 on 256x256 mel images, B0 on 16
faces of 224 px, from scratch, 1 epoch on a 40-clip demo set) in a temporary
folder: its scores mean nothing, its cost per clip is that of a real
full-size run. Each call gets a fresh predict cache; the second call on the
same files reuses its features and scores. Prints one line per call: clips,
seconds, clips/s, and the seconds of preparation, each branch and the stack.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

FULL_SIZE = ["train.epochs=1", "train.audio.model.pretrained=false", "train.visual.model.pretrained=false",
             "folds.n_splits=2", "train.num_workers=0", "train.patience=0"]


def full_size_run(folder: Path) -> Path:
    """A finished full-size run (1 epoch, tiny data) under ``folder``; returns its run folder."""
    from mmdf.demo.dataset import make_demo_dataset
    from mmdf.experiment.runner import run_trials
    from mmdf.experiment.spec import load_pipeline

    root = Path(__file__).resolve().parents[1]
    overrides = [f"data.root={folder / 'data'}", f"data.cache_dir={folder / 'cache'}",
                 f"runs_dir={folder / 'runs'}", "experiment=full_size", *FULL_SIZE]
    exp = load_pipeline(root / "configs" / "pipeline.yaml", overrides)
    make_demo_dataset(folder / "data", n_train=24, n_val=8, n_test=8, seed=0)
    run_trials(exp, exp.trials)
    return exp.trials[0].run_dir


def timed_call(run_dir: Path, inputs: list[str], cache: Path, workers: int | None) -> dict:
    """Load the run and score ``inputs`` as ``predict_clips`` does (one chunk, no output file)."""
    from mmdf.predict.predict import Predictor, collect_inputs

    t0 = time.perf_counter()
    paths = collect_inputs(inputs)
    predictor = Predictor(run_dir, cache_dir=cache, progress=False, expected=paths)
    loaded = time.perf_counter()
    rows = predictor.score(paths, workers)
    seconds = time.perf_counter() - t0
    return {"clips": len(rows), "scored": int(rows["prob"].notna().sum()), "seconds": seconds,
            "clips_per_s": len(rows) / seconds, "load_s": loaded - t0,
            **{f"{k}_s": v for k, v in predictor.seconds.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help="clips or folders to score")
    parser.add_argument("--run", type=Path, help="a finished (stacked) run")
    parser.add_argument("--full-size", action="store_true", help="make a tiny run with the full-size configs first")
    parser.add_argument("--workers", type=int, help="preprocessing processes (default: the run's)")
    args = parser.parse_args()
    if (args.run is None) == (not args.full_size):
        parser.error("give either --run RUN or --full-size")
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp:
        run_dir = full_size_run(Path(tmp)) if args.full_size else args.run
        cache = Path(tmp) / "predict_cache"
        rows = [{"call": call, **timed_call(run_dir, args.inputs, cache, args.workers)}
                for call in ("first", "second")]
    print(pd.DataFrame(rows).to_string(index=False, float_format="%.2f"))


if __name__ == "__main__":
    main()
