"""Running preprocessing over many clips: worker processes, shards, resume, merge.

The parent only schedules: it keeps a bounded number of clips in flight,
appends each finished clip's row to its shard's journal at once (so a killed
run resumes where it stopped) and writes the manifest at the end. Its memory
is the manifest itself and little more: the journal is read once, into a
compact table, tasks are made one at a time from the table of clips still to
do, and finished rows are collected into the same kind of table.

A worker that dies outright (a decoder crash) costs only the clip that caused
it: the clips in flight are retried one at a time and the one that crashes
alone is recorded as ``corrupt``. Workers die with the parent (see
:func:`mmdf.prepare.clip.die_with_parent`); one run per cache shard holds its
lock (:mod:`mmdf.prepare.lock`); temporary files of killed runs are removed
at the start.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

from mmdf.data.labels import load_dataset
from mmdf.errors import MmdfError
from mmdf.files import remove_stale_temps
from mmdf.prepare.cache import (
    attach_donors, cache_root, clip_stem, feature_params, find_donors, finished, write_text,
)
from mmdf.prepare.clip import ClipTask, empty_row, init_worker, run_task, set_worker_state, task_borrow
from mmdf.prepare.journal import JournalWriter, RowTable, concat_tables, read_journal_table
from mmdf.prepare.lock import cache_lock
from mmdf.prepare.manifest import absolutize, assemble_manifest, build_manifest, write_manifest
from mmdf.prepare.row import FEATURE_FILES, KEY_FIELDS, ManifestRow

log = logging.getLogger(__name__)

MP_CONTEXT = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
WORKER_PRELOAD = ["torch", "facenet_pytorch", "librosa", "librosa.feature", "cv2", "av", "mmdf.prepare.clip",
                  "mmdf.prepare.forkserver_guard"]  # the fork server dies with this process
CRASHED = "the worker process crashed on this clip (decoder failure); the file is likely damaged"


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
    features on disk are skipped unless ``force``. Raises :class:`MmdfError`
    when another run holds this shard of the cache.
    """
    shard = parse_shard(shard) if not isinstance(shard, tuple) else shard
    clips = load_dataset(cfg.data, missing="keep")  # label-file problems stop here, before any work
    mine = shard_rows(clips, shard)
    root = cache_root(cfg)
    root.mkdir(parents=True, exist_ok=True)
    with cache_lock(root, shard):
        removed = remove_stale_temps(root)
        if removed:
            log.info("prepare: removed %d temporary file(s) left by a killed run", len(removed))
        write_text(root / "params.json", json.dumps(feature_params(cfg.prepare), indent=2, sort_keys=True))
        table = read_journal_table(root)
        todo = clips_to_do(cfg, root, mine, table, force)
        _log_plan(todo, mine, shard, root)
        made = RowTable()
        journal = root / "journal" / f"shard-{shard[0]}-of-{shard[1]}.jsonl"
        run_tasks(iter_tasks(todo), cfg.prepare, root, journal, sink=lambda row, _: made.add(row),
                  total=len(todo))
        del todo
        table = concat_tables(table, made.frame())
        if shard[1] == 1:
            return _write_manifest(clips, table, root)
    rows = build_manifest(mine, table, root)
    _log_summary(rows, None)
    log.info("shard %d/%d done; run `mmdf prepare --merge` once every shard has finished", *shard)
    return rows


def clips_to_do(cfg, root: Path, mine: pd.DataFrame, table: pd.DataFrame, force: bool) -> pd.DataFrame:
    """The clips of ``mine`` to process: ``split, video_name, path, current_source`` (+ donors' halves).

    A clip is done when its journal row's features exist and the clip is
    unchanged since; ``force`` redoes every existing clip and borrows nothing.
    """
    merged = mine[[*KEY_FIELDS, "path", "exists"]].merge(
        table.reindex(columns=[*KEY_FIELDS, "source", *FEATURE_FILES.values()]), on=list(KEY_FIELDS), how="left")
    done, sources = finished(root, merged)
    need = merged["exists"].to_numpy(dtype=bool) & (~done | force)
    todo = merged.loc[need, [*KEY_FIELDS, "path"]].reset_index(drop=True)
    todo["current_source"] = np.asarray(sources, dtype=object)[need]
    if len(todo) and not force:
        attach_donors(todo, find_donors(cfg, root))
    return todo


def iter_tasks(todo: pd.DataFrame) -> Iterator[ClipTask]:
    """One :class:`ClipTask` at a time from the table of clips to do."""
    for row in todo.itertuples(index=False):
        record = row._asdict()
        yield ClipTask(row.split, row.video_name, row.path, clip_stem(row.split, row.video_name), task_borrow(record))


def _log_plan(todo: pd.DataFrame, mine: pd.DataFrame, shard: tuple[int, int], root: Path) -> None:
    n_borrow = sum(int(todo[c].notna().sum()) for c in todo if c.startswith("borrow_"))
    if n_borrow:
        log.info("prepare: %d halves taken from caches made with the same mel or face parameters", n_borrow)
    n_missing = int((~mine["exists"]).sum())
    log.info(
        "prepare: %d clips in shard %d/%d (%d to process, %d already done, %d missing files); cache %s",
        len(mine), shard[0], shard[1], len(todo), len(mine) - len(todo) - n_missing, n_missing, root,
    )


def _write_manifest(clips: pd.DataFrame, table: pd.DataFrame, root: Path) -> pd.DataFrame:
    """Build, store and return the manifest of every clip (stored relative, returned absolute)."""
    manifest = build_manifest(clips, table, root, absolute=False)
    del table
    write_manifest(manifest, root)
    manifest = absolutize(manifest, root)
    _log_summary(manifest, root / "manifest.parquet")
    return manifest


def merge_shards(cfg) -> pd.DataFrame:
    """Join the shards' journals into the manifest of every clip; raises when a clip is unaccounted for."""
    clips = load_dataset(cfg.data, missing="keep")
    root = cache_root(cfg)
    return _write_manifest(clips, read_journal_table(root), root)


def prepare_clips(paths: list[str | Path], cfg, workers: int | None = None,
                  borrow: list[dict | None] | None = None) -> pd.DataFrame:
    """Prepare arbitrary clips (not in label files, e.g. for `mmdf predict`) into the same cache.

    Returns manifest rows (split ``predict``, target NA) in the order of ``paths``;
    a path that does not exist gets status ``missing``. ``borrow``: per path, the
    halves to link from an earlier clip's features (:attr:`ClipTask.borrow`).
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
    lent = borrow or [None] * len(paths)
    tasks = [
        ClipTask("predict", r.video_name, r.path, clip_stem("predict", r.video_name, r.path), lent[i])
        for i, r in enumerate(clips.itertuples(index=False)) if r.exists
    ]
    collected: dict[str, ManifestRow] = {}
    run_tasks(tasks, cfg.prepare, root, None, workers=workers,
              sink=lambda row, task: collected.__setitem__(task.path, row))
    rows = [
        collected.get(r.path)
        or empty_row(ClipTask("predict", r.video_name, r.path, ""), "missing", f"file not found: {r.path}")
        for r in clips.itertuples(index=False)
    ]
    return assemble_manifest(clips, rows, root)


# --------------------------------------------------------------------------- running tasks


class _Report:
    """Where finished rows go: the journal (at once, flushed), the sink, the progress bar and the log."""

    def __init__(self, total: int, progress: bool, journal: Path | None, sink):
        from tqdm.auto import tqdm

        self.writer = JournalWriter(journal) if journal is not None else None
        self.sink = sink
        self.counts: dict[str, int] = {}
        self.bar = tqdm(total=total, unit="clip", desc="prepare", disable=not progress, smoothing=0.05)

    def finish(self, task: ClipTask, row: ManifestRow) -> None:
        if self.writer is not None:
            self.writer.write(row)
        if self.sink is not None:
            self.sink(row, task)
        self.counts[row.status] = self.counts.get(row.status, 0) + 1
        if row.status != "ok":
            log.warning("%s/%s: %s: %s", task.split, task.video_name, row.status, row.error)
        self.bar.update(1)
        self.bar.set_postfix(dict(sorted(self.counts.items())), refresh=False)

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()


class _Pending:
    """Tasks not yet submitted, read lazily; the suspects of a worker crash go first, one at a time."""

    def __init__(self, tasks: Iterable[ClipTask]):
        self.tasks = iter(tasks)
        self.head: ClipTask | None = None
        self.suspects: list[ClipTask] = []

    def any_new(self) -> bool:
        if self.head is None:
            self.head = next(self.tasks, None)
        return self.head is not None

    def pop_new(self) -> ClipTask:
        self.any_new()
        task, self.head = self.head, None
        return task

    def __bool__(self) -> bool:
        return bool(self.suspects) or self.any_new()


def run_tasks(
    tasks: Iterable[ClipTask], prepare_cfg, root: Path, journal: Path | None,
    sink=None, workers: int | None = None, total: int | None = None,
) -> None:
    """Process ``tasks`` (``total`` of them) in worker processes, or as Ray tasks (``prepare.engine: ray``);
    each finished row goes to ``journal`` and ``sink``.

    ``sink(row, task)`` receives every :class:`ManifestRow` with its task.
    """
    total = len(tasks) if total is None else total
    if not total:
        return
    report = _Report(total, prepare_cfg.progress, journal, sink)
    try:
        if prepare_cfg.engine == "ray":
            from mmdf.prepare.ray_engine import run_on_ray  # deferred: ray is an extra

            run_on_ray(tasks, prepare_cfg, root, report, workers or prepare_cfg.workers)
            return
        if not prepare_cfg.isolate:
            set_worker_state(prepare_cfg, root, threads=None)
            for task in tasks:
                report.finish(task, run_task(task))
            return
        n_workers = min(resolve_workers(workers or prepare_cfg.workers), total)
        _run_isolated(_Pending(tasks), n_workers, prepare_cfg, root, report)
    finally:
        report.close()


def _run_isolated(pending: _Pending, n_workers: int, prepare_cfg, root: Path, report: _Report) -> None:
    """Pools of workers until every task is done; a pool broken by a crash is replaced."""
    context = worker_context()
    while pending:
        pool = ProcessPoolExecutor(n_workers, mp_context=context, initializer=init_worker,
                                   initargs=(prepare_cfg, str(root), os.getpid()))
        in_flight: dict = {}
        try:
            _drain(pool, pending, in_flight, 2 * n_workers, report)  # window: bounds memory
        except BrokenProcessPool:
            _after_crash(in_flight, pending, report)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _after_crash(in_flight: dict, pending: _Pending, report: _Report) -> None:
    """A clip that crashed its worker alone is corrupt; those in flight together become suspects."""
    for task, alone in in_flight.values():
        if alone:
            report.finish(task, empty_row(task, "corrupt", CRASHED))
        else:
            pending.suspects.append(task)
    log.warning("a worker process died; retrying the %d clips in flight one by one", len(pending.suspects))


def _drain(pool, pending: _Pending, in_flight: dict, window: int, report: _Report) -> None:
    """Keep ``window`` clips in flight until none is left; raises BrokenProcessPool when a worker dies."""
    while pending or in_flight:
        if pending.suspects and not in_flight:  # a suspect runs alone, so a second crash names the culprit
            task = pending.suspects.pop()
            in_flight[pool.submit(run_task, task)] = (task, True)
        while not pending.suspects and len(in_flight) < window and pending.any_new():
            task = pending.pop_new()
            in_flight[pool.submit(run_task, task)] = (task, False)
        done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
        for future in done:
            row = future.result()  # raises BrokenProcessPool if its worker died
            task, _ = in_flight.pop(future)
            report.finish(task, row)


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


def _log_summary(manifest: pd.DataFrame, path: Path | None) -> None:
    counts = manifest["status"].value_counts().to_dict()
    text = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    log.info("%d clips (%s)%s", len(manifest), text, f"; manifest {path}" if path else "")
