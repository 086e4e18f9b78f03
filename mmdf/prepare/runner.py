"""Running preprocessing over many clips: worker processes, shards, resume, merge.

The parent only schedules: it keeps a bounded number of clips in flight (so
memory does not grow with the number of clips), appends each finished clip's
row to its shard's journal at once (so a killed run resumes where it stopped)
and writes the manifest at the end. A worker that dies outright (a decoder
crash) costs only the clip that caused it: the clips in flight are retried one
at a time and the one that crashes alone is recorded as ``corrupt``.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pandas as pd

from mmdf.errors import MmdfError
from mmdf.prepare.cache import (
    borrowable,
    cache_root,
    clip_stem,
    feature_params,
    find_donors,
    is_done,
    read_journal,
    source_fingerprint,
    write_text,
)
from mmdf.prepare.clip import ClipTask, empty_row, init_worker, run_task, set_worker_state
from mmdf.prepare.manifest import assemble_manifest, build_manifest, write_manifest

log = logging.getLogger(__name__)

MP_CONTEXT = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
WORKER_PRELOAD = ["torch", "facenet_pytorch", "librosa", "librosa.feature", "cv2", "av", "mmdf.prepare.clip"]


def parse_shard(text: str | None) -> tuple[int, int]:
    """``'2/8'`` -> (2, 8): shard 2 of 8, counted from 0."""
    if not text:
        return 0, 1
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise MmdfError(f"--shard must look like i/N (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise MmdfError(f"--shard {text}: need 0 <= i < N, got i={index}, N={count}")
    return index, count


def resolve_workers(workers: int) -> int:
    if workers > 0:
        return workers
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def shard_rows(clips: pd.DataFrame, shard: tuple[int, int]) -> pd.DataFrame:
    """The clips of one shard: every N-th clip in label-file order, so shards are disjoint and even."""
    index, count = shard
    return clips.iloc[index::count]


def prepare_dataset(cfg, shard: str | tuple[int, int] | None = None, force: bool = False) -> pd.DataFrame:
    """Prepare every clip of the config's label files (or one shard of them); return the manifest.

    A single run (no shard, or ``0/1``) writes ``manifest.parquet`` and returns
    it; a shard of several returns its own rows, and :func:`merge_shards` joins
    them once every shard is done. Clips already in a journal with their
    features on disk are skipped unless ``force``.
    """
    from mmdf.data.labels import load_dataset

    shard = parse_shard(shard) if not isinstance(shard, tuple) else shard
    clips = load_dataset(cfg.data, missing="keep")  # label-file problems stop here, before any work
    mine = shard_rows(clips, shard)
    root = cache_root(cfg)
    root.mkdir(parents=True, exist_ok=True)
    write_text(root / "params.json", json.dumps(feature_params(cfg.prepare), indent=2, sort_keys=True))

    done = {} if force else read_journal(root)
    lendable = {} if force else borrowable(find_donors(cfg, root))
    tasks = []
    for row in mine.itertuples(index=False):
        key = (row.split, row.video_name)
        if not row.exists:
            continue  # recorded as `missing` in the manifest
        if is_done(root, done.get(key), row.path):
            continue
        source = source_fingerprint(row.path)
        borrow = {kind: lent for kind, lent in lendable.get(key, {}).items() if lent[1].get("source") == source}
        tasks.append(ClipTask(row.split, row.video_name, row.path, clip_stem(row.split, row.video_name),
                              borrow or None))
    n_borrow = sum(t.borrow is not None for t in tasks)
    if n_borrow:
        log.info("prepare: %d clips take features from caches made with the same mel or face parameters", n_borrow)

    n_missing = int((~mine["exists"]).sum())
    log.info(
        "prepare: %d clips in shard %d/%d (%d to process, %d already done, %d missing files); cache %s",
        len(mine), shard[0], shard[1], len(tasks), len(mine) - len(tasks) - n_missing, n_missing, root,
    )
    journal = root / "journal" / f"shard-{shard[0]}-of-{shard[1]}.jsonl"
    run_tasks(tasks, cfg.prepare, root, journal)

    if shard[1] == 1:
        manifest = build_manifest(clips, read_journal(root), root)
        write_manifest(manifest, root)
        _log_summary(manifest, root / "manifest.parquet")
        return manifest
    rows = build_manifest(mine, read_journal(root), root)
    _log_summary(rows, None)
    log.info("shard %d/%d done; run `mmdf prepare --merge` once every shard has finished", *shard)
    return rows


def merge_shards(cfg) -> pd.DataFrame:
    """Join the shards' journals into the manifest of every clip; raises when a clip is unaccounted for."""
    from mmdf.data.labels import load_dataset

    clips = load_dataset(cfg.data, missing="keep")
    root = cache_root(cfg)
    manifest = build_manifest(clips, read_journal(root), root)
    write_manifest(manifest, root)
    _log_summary(manifest, root / "manifest.parquet")
    return manifest


def prepare_clips(paths: list[str | Path], cfg, workers: int | None = None) -> pd.DataFrame:
    """Prepare arbitrary clips (not in label files, e.g. for `mmdf predict`) into the same cache.

    Returns manifest rows (split ``predict``, target NA) in the order of ``paths``;
    a path that does not exist gets status ``missing``.
    """
    root = cache_root(cfg)
    root.mkdir(parents=True, exist_ok=True)
    clips = pd.DataFrame(
        {
            "split": "predict",
            "video_name": [Path(p).name for p in paths],
            "target": pd.array([pd.NA] * len(paths), dtype="Int8"),
            "path": [str(Path(p).resolve()) for p in paths],
            "exists": [Path(p).is_file() for p in paths],
        }
    )
    tasks = [
        ClipTask("predict", r.video_name, r.path, clip_stem("predict", r.video_name, r.path))
        for r in clips.itertuples(index=False) if r.exists
    ]
    collected: dict[str, dict] = {}
    run_tasks(tasks, cfg.prepare, root, None, sink=lambda row: collected.__setitem__(row["_path"], row),
              workers=workers)
    rows = [
        collected.get(r.path)
        or empty_row(ClipTask("predict", r.video_name, r.path, ""), "missing", f"file not found: {r.path}")
        for r in clips.itertuples(index=False)
    ]
    return assemble_manifest(clips, rows, root)


def run_tasks(
    tasks: list[ClipTask], prepare_cfg, root: Path, journal: Path | None,
    sink=None, workers: int | None = None,
) -> None:
    """Process ``tasks`` in worker processes; each finished row goes to ``journal`` (and ``sink``)."""
    if not tasks:
        return
    from tqdm.auto import tqdm

    n_workers = min(resolve_workers(workers or prepare_cfg.workers), len(tasks))
    window = 2 * n_workers  # clips in flight: bounds memory whatever the number of clips
    pending = list(reversed(tasks))  # pop() from the end keeps the order
    suspects: list[ClipTask] = []  # in flight when a worker died: retried one at a time
    journal_fh = None
    if journal is not None:
        journal.parent.mkdir(parents=True, exist_ok=True)
        journal_fh = open(journal, "a", encoding="utf-8")
        if _ends_torn(journal):
            journal_fh.write("\n")  # end a line torn by a killed run, so the next row parses
    bar = tqdm(total=len(tasks), unit="clip", desc="prepare", disable=not prepare_cfg.progress, smoothing=0.05)
    counts: dict[str, int] = {}

    def finish(task: ClipTask, row: dict) -> None:
        row["_path"] = task.path
        if journal_fh is not None:
            journal_fh.write(json.dumps({k: v for k, v in row.items() if k != "_path"}) + "\n")
            journal_fh.flush()
        if sink is not None:
            sink(row)
        counts[row["status"]] = counts.get(row["status"], 0) + 1
        if row["status"] != "ok":
            log.warning("%s/%s: %s: %s", task.split, task.video_name, row["status"], row["error"])
        bar.update(1)
        bar.set_postfix({k: v for k, v in sorted(counts.items())}, refresh=False)

    try:
        if not prepare_cfg.isolate:
            set_worker_state(prepare_cfg, root, threads=None)
            while pending:
                task = pending.pop()
                finish(task, run_task(task))
            return
        context = worker_context()
        while pending or suspects:
            pool = ProcessPoolExecutor(
                n_workers, mp_context=context, initializer=init_worker, initargs=(prepare_cfg, str(root))
            )
            in_flight: dict = {}
            try:
                while pending or suspects or in_flight:
                    # a suspect runs alone, so a second crash names the culprit
                    while suspects and not in_flight:
                        task = suspects.pop()
                        in_flight[pool.submit(run_task, task)] = (task, True)
                    while not suspects and pending and len(in_flight) < window:
                        task = pending.pop()
                        in_flight[pool.submit(run_task, task)] = (task, False)
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        task, _ = in_flight[future]
                        row = future.result()  # raises BrokenProcessPool if its worker died
                        del in_flight[future]
                        finish(task, row)
            except BrokenProcessPool:
                for future, (task, alone) in in_flight.items():
                    if alone:
                        finish(task, empty_row(task, "corrupt", "the worker process crashed on this clip "
                                               "(decoder failure); the file is likely damaged"))
                    else:
                        suspects.append(task)
                log.warning("a worker process died; retrying the %d clips in flight one by one", len(suspects))
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()
        if journal_fh is not None:
            journal_fh.close()


def worker_context():
    """Start method of the worker processes.

    Plain fork is unsafe once this process has run torch or OpenCV (their
    thread pools do not survive a fork, and children hang), so workers come
    from a fork server that has only imported the heavy modules: each starts
    in a fraction of a second, in a clean state.
    """
    context = multiprocessing.get_context(MP_CONTEXT)
    if MP_CONTEXT == "forkserver":
        context.set_forkserver_preload(WORKER_PRELOAD)
    return context


def _ends_torn(path: Path) -> bool:
    with open(path, "rb") as fh:
        if fh.seek(0, os.SEEK_END) == 0:
            return False
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) != b"\n"


def _log_summary(manifest: pd.DataFrame, path: Path | None) -> None:
    counts = manifest["status"].value_counts().to_dict()
    text = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    log.info("%d clips (%s)%s", len(manifest), text, f"; manifest {path}" if path else "")
