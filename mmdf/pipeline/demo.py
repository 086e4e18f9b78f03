"""The one-command demo: every step of the pipeline on the built-in demo data.

It makes the demo dataset, then runs the steps of ``configs/demo/pipeline.yaml``
(prepare, every branch, stack) with the experiment runner's step machinery,
in place: each step is skipped when it finished with the same settings, so a
second run is instant, and its record (``runs/demo/steps.json``) holds each
step's wall time and peak memory.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from mmdf.demo.dataset import make_demo_dataset
from mmdf.errors import MmdfError
from mmdf.experiment.runner import read_records, run_trials
from mmdf.experiment.spec import load_pipeline
from mmdf.files import atomic_write
from mmdf.stack.report import metrics_table

log = logging.getLogger(__name__)


def demo_config_dir() -> Path:
    """``configs/demo`` of the working directory, else of the source checkout mmdf runs from."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        folder = root / "configs" / "demo"
        if folder.is_dir():
            return folder
    raise MmdfError(
        "configs/demo not found in the working directory or beside the mmdf package; "
        "run `mmdf demo` from the root of the mmdf checkout"
    )


def run_demo(overrides: list[str] = (), force: bool = False, n_train: int = 300, n_val: int = 100,
             n_test: int = 100, seed: int = 0) -> Path:
    """Run the whole demo; returns the run folder holding the submission and the report.

    The sizes and ``seed`` are those of the generated dataset (a seed other
    than 0 gets folders of its own, so that seeds never overwrite each other);
    tests shrink them (and the configs, through ``overrides``) to run the same
    pipeline in seconds.
    """
    if seed:
        name = f"demo-seed{seed}"
        overrides = [f"data.root=data/{name}", f"data.cache_dir=cache/{name}", f"experiment={name}", *overrides]

    exp = load_pipeline(demo_config_dir() / "pipeline.yaml", list(overrides))
    trial = exp.trials[0]
    data_root = Path(next(iter(trial.configs.values())).data.root)
    start = time.perf_counter()
    make_demo_dataset(data_root, n_train=n_train, n_val=n_val, n_test=n_test, seed=seed, force=force)
    times = {"data": time.perf_counter() - start}
    actions = run_trials(exp, exp.trials, force=force)
    records = read_records(trial.run_dir)
    for act in actions:  # steps skipped as finished took no time now
        ran = act.what not in ("done", "reuse")
        times[act.step] = records.get(act.step, {}).get("wall_s", 0.0) if ran else 0.0
    total = time.perf_counter() - start  # branch steps may have run at once: not the sum of the steps
    with atomic_write(trial.run_dir / "demo_timings.json") as tmp:
        tmp.write_text(json.dumps({**times, "total": round(total, 2)}, indent=2))
    print(summary(trial.run_dir, times, total))
    return trial.run_dir


def summary(run_dir: Path, times: dict[str, float], total: float | None = None) -> str:
    """What a user reads at the end: the AUC table and where the files are."""
    total = sum(times.values()) if total is None else total
    lines = ["", f"mmdf demo finished in {total:.0f} s "
             f"({', '.join(f'{k} {v:.0f} s' for k, v in times.items())})"]
    metrics_path = run_dir / "stack" / "metrics.json"
    if metrics_path.is_file():
        lines += ["", metrics_table(json.loads(metrics_path.read_text()))]
    for name in ("submission.csv", "report.md"):
        lines.append(f"{name:16s} {run_dir / name}")
    return "\n".join(lines)
