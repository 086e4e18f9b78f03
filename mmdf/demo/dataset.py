"""Write the demo dataset in the FFDV layout, in parallel and resumably.

Layout under ``out``::

    trainset/*.mp4  valset/*.mp4  testset/*.mp4
    trainset_label.txt  valset_label.txt      video_name,target
    testset_list.txt                          video_name
    manifest.csv                              how each clip was made (kind, hard_case, identity, voice, ...)
    segment_labels.csv                        where each clip is manipulated, per modality (demo.segments)
    demo_data.json                            the arguments; written last, marks the dataset complete

Clips are written under a temporary name and renamed, so a rerun after an
interruption renders only the missing ones; a rerun of a complete dataset
with the same arguments is a no-op unless ``force``.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import pandas as pd

from mmdf.data.labels import DEMO_DATA_ROOT
from mmdf.demo.encode import write_mp4
from mmdf.demo.plan import FPS, SAMPLE_RATE, SPLIT_DIRS, ClipSpec, plan_dataset
from mmdf.demo.render import render_audio, render_frames
from mmdf.demo.segments import SEGMENT_LABELS, segment_labels
from mmdf.errors import MmdfError, list_offenders
from mmdf.files import atomic_write
from mmdf.prepare.runner import worker_context

log = logging.getLogger(__name__)

DEFAULT_OUT = DEMO_DATA_ROOT
FORMAT_VERSION = 4  # bump whenever the same arguments would render different clips
MARKER = "demo_data.json"
LABEL_FILES = {"train": "trainset_label.txt", "val": "valset_label.txt", "test": "testset_list.txt"}


def clip_path(out: Path, spec: ClipSpec) -> Path:
    return Path(out) / SPLIT_DIRS[spec.split] / spec.video_name


def make_clip(spec: ClipSpec, path: Path) -> None:
    """Render and encode one clip to ``path`` (via a temporary name)."""
    try:
        write_mp4(path, render_frames(spec), FPS, render_audio(spec), SAMPLE_RATE)
    except Exception as exc:  # name the clip: a worker's traceback alone does not
        raise RuntimeError(f"demo clip {spec.split}/{spec.video_name} ({spec.kind}, {spec.hard_case or 'normal'}) failed: {exc}") from exc


def _init_worker() -> None:
    """One thread per worker: the pool already uses every core."""
    import cv2
    from threadpoolctl import threadpool_limits

    cv2.setNumThreads(1)
    threadpool_limits(1)


def _write_text(path: Path, text: str) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _remove_previous(out: Path) -> None:
    """Delete what an earlier run wrote (and nothing else a user may keep in ``out``)."""
    for folder in SPLIT_DIRS.values():
        d = out / folder
        made = [p for p in d.iterdir() if p.suffix == ".mp4" or (p.name.startswith(".") and ".mp4.tmp" in p.name)] \
            if d.is_dir() else []
        for p in made:
            p.unlink()
    for name in (*LABEL_FILES.values(), "manifest.csv", "segment_labels.csv", "preview.png", MARKER):
        (out / name).unlink(missing_ok=True)


def _made_by_older_generator(out: Path, args: dict) -> bool:
    """Same sizes and seed, older FORMAT_VERSION: the clips would differ, so rebuild."""
    marker = out / MARKER
    if not marker.is_file():
        return False
    previous = json.loads(marker.read_text())
    same_request = {k: v for k, v in previous.items() if k != "version"} == {k: v for k, v in args.items() if k != "version"}
    return same_request and previous.get("version") != args["version"]


def _check_previous(out: Path, args: dict, specs: list[ClipSpec]) -> bool:
    """True when ``out`` already holds this exact dataset; raises when it holds another."""
    marker = out / MARKER
    planned = {clip_path(out, s) for s in specs}
    if marker.is_file():
        previous = json.loads(marker.read_text())
        if previous != args:
            raise MmdfError(
                f"{out} already holds a demo dataset made with {previous}, not {args}; "
                "pass --force to overwrite it or choose another folder"
            )
        missing = [str(p) for p in sorted(planned) if not p.is_file()]
        if not missing and (out / "manifest.csv").is_file():
            return True
        log.warning("%s: %d clip(s) of the finished dataset are gone; rendering them again", out, len(missing))
        return False
    strangers = [
        str(p) for folder in SPLIT_DIRS.values() if (out / folder).is_dir() for p in (out / folder).glob("*.mp4") if p not in planned
    ]
    if strangers:
        raise MmdfError(
            f"{out} holds clips this demo dataset would not make: {list_offenders(strangers)}; "
            "pass --force to replace them or choose another folder"
        )
    return False


def _write_tables(out: Path, specs: list[ClipSpec]) -> None:
    manifest = pd.DataFrame([s.manifest_row() for s in specs])
    for split, name in LABEL_FILES.items():
        rows = manifest[manifest["split"] == split]
        cols = ["video_name"] if split == "test" else ["video_name", "target"]
        _write_text(out / name, rows[cols].to_csv(index=False, lineterminator="\n"))
    _write_text(out / "manifest.csv", manifest.to_csv(index=False, lineterminator="\n"))
    _write_segment_labels(out, specs)


def _write_segment_labels(out: Path, specs: list[ClipSpec]) -> None:
    """Where each clip is manipulated, per modality (see :mod:`mmdf.demo.segments`)."""
    _write_text(out / SEGMENT_LABELS, segment_labels(specs).to_csv(index=False, lineterminator="\n"))


def make_demo_dataset(
    out: str | Path = DEFAULT_OUT,
    n_train: int = 300,
    n_val: int = 100,
    n_test: int = 100,
    seed: int = 0,
    workers: int = 0,
    force: bool = False,
) -> Path:
    """Write the synthetic FFDV-layout dataset to ``out`` and return ``out``.

    About 40% real clips and 15% each of ``fake_visual``, ``fake_audio``,
    ``fake_both`` and ``fake_sync`` (real face and voice, out of step); ~3%
    each of the hard cases ``no_audio``, ``no_face``, ``short`` and ``silent``
    (at least one each per split from 8 clips on; never on a sync fake).
    ``workers=0`` uses every core. The labels, the manifest and every clip's
    pixels and samples are fixed by the seed and the sizes.
    """
    for name, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if n < 0:
            raise MmdfError(f"{name} must be 0 or more, got {n}")
    if n_train < 2:
        raise MmdfError(f"n_train must be at least 2 (one real and one fake clip), got {n_train}")
    out = Path(out)
    args = {"n_train": n_train, "n_val": n_val, "n_test": n_test, "seed": seed, "version": FORMAT_VERSION}
    specs = plan_dataset(n_train, n_val, n_test, seed)
    if not force and _made_by_older_generator(out, args):
        log.warning("%s was made by an older version of this generator; rebuilding it", out)
        force = True
    if force:
        _remove_previous(out)
    elif _check_previous(out, args, specs):
        log.info("%s already holds this demo dataset; nothing to do (pass --force to rebuild)", out)
        if not (out / "segment_labels.csv").is_file():  # made before the segment labels were written
            _write_segment_labels(out, specs)
        return out
    (out / MARKER).unlink(missing_ok=True)  # incomplete until the end
    for folder in SPLIT_DIRS.values():
        (out / folder).mkdir(parents=True, exist_ok=True)

    todo = [s for s in specs if not clip_path(out, s).is_file()]
    # longest first, so the pool does not end waiting on one long clip
    todo.sort(key=lambda s: -s.n_frames)
    _render_all(out, todo, workers)
    _write_tables(out, specs)
    _write_text(out / MARKER, json.dumps(args, indent=1) + "\n")
    log.info("demo dataset: %d clips in %s", len(specs), out)
    return out


def _render_here(out: Path, todo: list[ClipSpec], bar) -> None:
    """Render in this process, on one core (OpenCV and BLAS kept to one thread)."""
    import cv2
    from threadpoolctl import threadpool_limits

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with threadpool_limits(1):
            for spec in todo:
                make_clip(spec, clip_path(out, spec))
                bar.update()
    finally:
        cv2.setNumThreads(threads)


def _render_all(out: Path, todo: list[ClipSpec], workers: int) -> None:
    from tqdm import tqdm

    n_workers = min(workers or os.cpu_count() or 1, max(len(todo), 1))
    bar = tqdm(total=len(todo), desc="demo clips", unit="clip", disable=not todo)
    if n_workers <= 1:
        _render_here(out, todo, bar)
    else:
        # Workers from prepare's fork server (heavy modules imported once, no thread pool started):
        # a plain fork of a process that has run torch, OpenCV or BLAS hangs in the children.

        with ProcessPoolExecutor(n_workers, mp_context=worker_context(), initializer=_init_worker) as pool:
            _wait_all([pool.submit(make_clip, s, clip_path(out, s)) for s in todo], bar)
    bar.close()


def _wait_all(futures: list, bar) -> None:
    """Each clip's result as it comes (a worker's error is raised here); the rest cancelled on error."""
    try:
        for f in as_completed(futures):
            f.result()
            bar.update()
    except BaseException:
        for f in futures:
            f.cancel()
        raise
