"""The cost curve: every step of the pipeline at growing numbers of demo-size clips, to project FFDV.

    python benchmarks/bench_scale.py --sizes 500 2000 8000 [--steps prepare,prepare_ray,train,stack,predict]

Per size N, a dataset of N clips in the FFDV layout (60% train, 20% val,
20% test) is made from the demo dataset (``mmdf demo-data``, made once) by
linking its clips under new names, so every size holds clips of the same
make-up and cost, and only their number grows. Each step runs as its own
``mmdf`` process with the demo configs (``configs/demo/``), as a user runs it:

- ``prepare``: `mmdf prepare` (local engine, every core) into a fresh cache;
- ``prepare_ray``: the same with ``--engine ray`` (a local Ray of every core)
  into another fresh cache (its manifest is checked equal to the local one's);
- ``train``: one epoch of each branch (``train.epochs=1``; the statistics
  branches fit as they always do), on the local cache;
- ``stack``: the stacker; ``predict``: `mmdf predict` of the run on the test clips.

Printed per size and step: wall seconds, seconds per clip, peak resident
memory of the step's main process and of its largest other process (a
worker: prepare's worker processes, Ray's workers, a loader), sampled every
0.2 s with psutil; and the cache's bytes per clip. A step whose seconds per
clip grow with N is the super-linear one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BRANCHES = {"audio": "audio.yaml", "visual": "visual.yaml", "sync": "sync.yaml", "audio_stats": "data.yaml",
            "visual_stats": "data.yaml", "sync_stats": "data.yaml"}
STEPS = ("prepare", "prepare_ray", "train", "stack", "predict")
SPLITS = (("trainset", "trainset_label.txt", 0.6), ("valset", "valset_label.txt", 0.2),
          ("testset", "testset_list.txt", 0.2))


def scaled_dataset(source: Path, out: Path, n: int) -> Path:
    """``n`` clips in the FFDV layout, linked from the demo dataset at ``source`` (each clip reused under
    new names as often as needed, per split, with its label)."""
    import pandas as pd

    if (out / "testset_list.txt").is_file():
        return out
    for folder, labels, share in SPLITS:
        table = pd.read_csv(source / labels)
        want = int(round(n * share))
        (out / folder).mkdir(parents=True, exist_ok=True)
        rows = []
        for i in range(want):
            row = table.iloc[i % len(table)].to_dict()
            name = f"r{i // len(table)}_{row['video_name']}"
            target = out / folder / name
            if not target.exists():
                os.link(source / folder / row["video_name"], target)
            rows.append({**row, "video_name": name})
        pd.DataFrame(rows, columns=table.columns).to_csv(out / labels, index=False)
    return out


def measure(command: list[str], log: Path) -> dict:
    """Run ``command``; wall seconds and the peak RSS (MiB) of its main process and of its largest other one."""
    import psutil

    peaks = {"main": 0, "other": 0}
    with open(log, "w") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(command, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
        done = threading.Event()

        def sample() -> None:
            main = psutil.Process(proc.pid)
            while not done.is_set():
                try:
                    peaks["main"] = max(peaks["main"], main.memory_info().rss)
                    for child in main.children(recursive=True):
                        peaks["other"] = max(peaks["other"], child.memory_info().rss)
                except psutil.Error:
                    pass
                done.wait(0.2)

        watcher = threading.Thread(target=sample, daemon=True)
        watcher.start()
        rc = proc.wait()
        done.set()
        watcher.join()
    seconds = time.perf_counter() - t0
    if rc:
        raise RuntimeError(f"{' '.join(command)} failed ({rc}); see {log}")
    return {"seconds": seconds, "peak_main_mib": peaks["main"] / 2**20, "peak_other_mib": peaks["other"] / 2**20}


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _mmdf(*args: str) -> list[str]:
    return [sys.executable, "-m", "mmdf", *args]


def run_size(n: int, demo: Path, work: Path, steps: list[str]) -> dict:
    """Every asked step at ``n`` clips; per step its :func:`measure` figures and seconds per clip."""
    root = scaled_dataset(demo, work / f"data-{n}", n)
    common = [f"data.root={root}", f"data.cache_dir={work / f'cache-{n}'}", f"runs_dir={work / 'runs'}",
              f"experiment=scale-{n}", "prepare.progress=false"]
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out: dict = {"clips": n}
    if "prepare" in steps:
        shutil.rmtree(work / f"cache-{n}", ignore_errors=True)
        out["prepare"] = measure(_mmdf("prepare", "--config", "configs/demo/data.yaml", *common),
                                 logs / f"prepare-{n}.log")
        out["cache_bytes_per_clip"] = folder_bytes(work / f"cache-{n}") / n
    if "prepare_ray" in steps:
        ray_cache = [c if not c.startswith("data.cache_dir=") else f"data.cache_dir={work / f'cache-ray-{n}'}"
                     for c in common]
        shutil.rmtree(work / f"cache-ray-{n}", ignore_errors=True)
        out["prepare_ray"] = measure(_mmdf("prepare", "--config", "configs/demo/data.yaml", "--engine", "ray",
                                           *ray_cache), logs / f"prepare_ray-{n}.log")
    if "train" in steps:
        for branch, config in BRANCHES.items():
            out[f"train_{branch}"] = measure(
                _mmdf("train", branch, "--config", f"configs/demo/{config}", *common, "train.epochs=1", "--force"),
                logs / f"train_{branch}-{n}.log")
    if "stack" in steps:
        out["stack"] = measure(_mmdf("stack", "--config", "configs/demo/stack.yaml", *common, "--force"),
                               logs / f"stack-{n}.log")
    if "predict" in steps:
        shutil.rmtree(work / "runs" / f"scale-{n}" / "predict_cache", ignore_errors=True)
        out["predict"] = measure(_mmdf("predict", "--run", str(work / "runs" / f"scale-{n}"), str(root / "testset"),
                                       "--out", str(work / f"scores-{n}.csv"), "--no-progress"),
                                 logs / f"predict-{n}.log")
        out["predict"]["clips"] = int(round(n * SPLITS[2][2]))
    for step, r in out.items():
        if isinstance(r, dict):
            r["s_per_clip"] = r["seconds"] / r.get("clips", n)
    return out


def format_table(results: list[dict]) -> str:
    head = f"{'clips':>6} {'step':<18} {'seconds':>8} {'s/clip':>8} {'main MiB':>9} {'worker MiB':>10}"
    lines = [head, "-" * len(head)]
    for r in results:
        for step, m in r.items():
            if isinstance(m, dict):
                lines.append(f"{r['clips']:>6} {step:<18} {m['seconds']:>8.1f} {m['s_per_clip']:>8.4f} "
                             f"{m['peak_main_mib']:>9.0f} {m['peak_other_mib']:>10.0f}")
        if "cache_bytes_per_clip" in r:
            lines.append(f"{r['clips']:>6} {'cache':<18} {r['cache_bytes_per_clip'] / 1024:>8.1f} KB a clip")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 8000])
    parser.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated, of {','.join(STEPS)}")
    parser.add_argument("--demo", default=str(REPO / "data/demo"), help="the demo dataset (made if absent)")
    parser.add_argument("--work", default=str(REPO / "runs/bench_scale"), help="datasets, caches, runs, logs")
    args = parser.parse_args()
    steps = [s for s in args.steps.split(",") if s]
    demo, work = Path(args.demo), Path(args.work)
    if not (demo / "trainset_label.txt").is_file():
        subprocess.run(_mmdf("demo-data", str(demo)), cwd=REPO, check=True)
    results = []
    for n in args.sizes:
        results.append(run_size(n, demo, work, steps))
        print(format_table(results[-1:]), flush=True)
        work.mkdir(parents=True, exist_ok=True)
        (work / "results.json").write_text(json.dumps(results, indent=2))
    print(format_table(results))
    print(f"machine: {os.cpu_count()} CPU cores; written: {work / 'results.json'}")


if __name__ == "__main__":
    main()
