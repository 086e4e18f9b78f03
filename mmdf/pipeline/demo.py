"""The one-command demo: every step of the pipeline on the built-in demo data.

It runs exactly what a user would run by hand (``mmdf demo-data``,
``mmdf prepare``, ``mmdf train audio``, ``mmdf train visual``, ``mmdf stack``)
with the configs in ``configs/demo/``, so it doubles as their end-to-end check.
Each step is a no-op when its outputs exist, so a second run is instant.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from mmdf.config import Config, load_config
from mmdf.errors import MmdfError

log = logging.getLogger(__name__)

STEPS = ("data", "prepare", "audio", "visual", "stack")


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


def load_demo_configs(overrides: list[str] = ()) -> dict[str, Config]:
    """The demo's config per step; ``overrides`` (key=value) apply to every one of them."""
    folder = demo_config_dir()
    files = {"prepare": "data.yaml", "audio": "audio.yaml", "visual": "visual.yaml", "stack": "stack.yaml"}
    return {step: load_config(folder / name, overrides) for step, name in files.items()}


def run_demo(overrides: list[str] = (), force: bool = False, n_train: int = 300, n_val: int = 100,
             n_test: int = 100) -> Path:
    """Run the whole demo; returns the run folder holding the submission and the report.

    The sizes are those of the generated dataset; tests shrink them (and the
    configs, through ``overrides``) to run the same pipeline in seconds.
    """
    from mmdf.demo.dataset import make_demo_dataset
    from mmdf.prepare.runner import prepare_dataset
    from mmdf.stack.run import run_stack
    from mmdf.train.trainer import train_branch

    cfgs = load_demo_configs(list(overrides))
    runs = {cfgs[s].run_dir for s in ("audio", "visual", "stack")}
    if len(runs) != 1:
        raise MmdfError(f"the demo configs name different experiments ({sorted(map(str, runs))}); "
                        "they must share one run folder")
    times: dict[str, float] = {}

    def step(name: str, fn, *args, **kwargs):
        log.info("demo step %d/%d: %s", STEPS.index(name) + 1, len(STEPS), name)
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        times[name] = time.perf_counter() - start
        return out

    data_root = Path(cfgs["prepare"].data.root)
    step("data", make_demo_dataset, data_root, n_train=n_train, n_val=n_val, n_test=n_test, force=force)
    step("prepare", prepare_dataset, cfgs["prepare"], force=force)
    step("audio", train_branch, cfgs["audio"], "audio", force=force)
    step("visual", train_branch, cfgs["visual"], "visual", force=force)
    step("stack", run_stack, cfgs["stack"], force=force)

    run_dir = cfgs["stack"].run_dir
    (run_dir / "demo_timings.json").write_text(json.dumps(times, indent=2))
    print(summary(run_dir, times))
    return run_dir


def summary(run_dir: Path, times: dict[str, float]) -> str:
    """What a user reads at the end: the AUC table and where the files are."""
    lines = ["", f"mmdf demo finished in {sum(times.values()):.0f} s "
             f"({', '.join(f'{k} {v:.0f} s' for k, v in times.items())})"]
    metrics_path = run_dir / "stack" / "metrics.json"
    if metrics_path.is_file():
        from mmdf.stack.report import metrics_table

        lines += ["", metrics_table(json.loads(metrics_path.read_text()))]
    for name in ("submission.csv", "report.md"):
        lines.append(f"{name:16s} {run_dir / name}")
    return "\n".join(lines)
