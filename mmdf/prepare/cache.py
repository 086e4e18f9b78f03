"""Where prepared features live, keyed by the parameters that made them, and crash-safe writes.

Layout under ``<data.cache_dir>/prep-<key>/`` (``key`` hashes the feature
parameters, so changing ``n_mels`` or ``num_frames`` starts a new cache and the
same parameters reuse it)::

    params.json                      the parameters behind the key
    mel/<split>/<video_name>.npy     (H, W) uint8 mel image (see clip_stem)
    faces/<split>/<video_name>.npz   (N, S, S, 3) uint8 face crops, each JPEG-encoded (see store)
    sync/<split>/<video_name>.npz    mouth crops (one tiled JPEG) and audio over a window (see mouth.SyncTrack)
    journal/shard-<i>-of-<n>.jsonl   one line per finished clip, appended as clips finish
    prepare-<i>-of-<n>.lock          held by the `mmdf prepare` of that shard while it runs
    manifest.parquet                 every clip of the label files, written at the end

Every file is written under a temporary name, fsynced and renamed, so a killed
run leaves either a whole file or none (and a temporary file that the next run
removes); a torn last journal line is ignored.

Caches whose keys differ in one half only (an ablation of ``n_mels`` keeps
the face parameters) share the other half: :func:`find_donors` finds the
sibling caches made with the same face (or mel) parameters, and a clip's
features are linked from there instead of being computed again. The sync half
is lent where the sync *and* face parameters agree (its mouth is placed by
the face half's landmarks, which a lent face half does not carry).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmdf.files import atomic_write
from mmdf.prepare.journal import read_journal, read_journal_table  # noqa: F401 - read_journal: public here
from mmdf.prepare.row import FEATURE_FILES, FEATURE_SUFFIX, KEY_FIELDS, KIND_FIELDS, KIND_STATUS, plain_record

# Bump when the feature code changes what it writes for the same parameters.
FEATURE_VERSION = 1
# The same for the sync half alone (it changes the cache's key, not what a sibling cache with the same
# mel or face parameters may lend). 2: the mouth placed by the face half's landmarks, which makes the
# sync features depend on ``prepare.faces`` as well (num_frames, detect_size, ...; all in the key).
SYNC_VERSION = 2
# Statuses of a half worth borrowing: the costly outcomes (the others are found before any work).
BORROWABLE = {"mel": ("ok",), "faces": ("ok", "no_face"), "sync": ("ok",)}
# Parameters that change how fast features are made, not what they are.
NOT_IN_KEY = {"workers", "device", "progress", "isolate", "batch_size", "engine", "address"}
# Parameters of both halves: a sibling cache lends a half only when these agree too.
SHARED_KEYS = ("version", "min_duration", "max_duration", "truncated", "truncated_tolerance")
# The parameter sections a sibling cache must share to lend each kind of half.
LENT_WITH = {"mel": ("mel",), "faces": ("faces",), "sync": ("sync", "faces", "sync_version")}
# File names are limited to 255 bytes; longer clip names are cut and told apart by a hash.
MAX_STEM_BYTES = 200


def _key_fields(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {
            f.name: _key_fields(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.name not in NOT_IN_KEY
        }
    if isinstance(value, (list, tuple)):
        return [_key_fields(v) for v in value]
    return value


def feature_params(prepare_cfg) -> dict:
    """The parameters that determine the cached features (a plain dict)."""
    return {"version": FEATURE_VERSION, "sync_version": SYNC_VERSION, **_key_fields(prepare_cfg)}


def cache_key(prepare_cfg) -> str:
    blob = json.dumps(feature_params(prepare_cfg), sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def cache_root(cfg) -> Path:
    """``<data.cache_dir>/prep-<key>`` for a :class:`mmdf.run_config.Config`."""
    return Path(cfg.data.cache_dir) / f"prep-{cache_key(cfg.prepare)}"


def clip_stem(split: str, video_name: str, path: str | Path | None = None) -> str:
    """File stem of a clip's features: its whole name, so ``a.mp4`` and ``a.MP4`` never share a file.

    Label files refuse names that differ only in case (see
    :func:`mmdf.data.labels.read_labels`), so stems stay apart on
    case-insensitive file systems too. Clips outside the label files get a
    hash of their path (names may repeat across folders); names too long for
    a file name are cut and get a hash of the whole name.
    """
    stem = video_name
    if len(stem.encode()) > MAX_STEM_BYTES:
        head = stem.encode()[: MAX_STEM_BYTES - 20].decode(errors="ignore")
        stem = f"{head}-{hashlib.sha1(video_name.encode()).hexdigest()[:12]}"
    if split == "predict" and path is not None:
        digest = hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:8]
        stem = f"{stem}-{digest}"
    return stem


def feature_relpath(kind: str, split: str, stem: str) -> str:
    """Path of a feature file relative to the cache root (``kind`` is 'mel', 'faces' or 'sync')."""
    return f"{kind}/{split}/{stem}{FEATURE_SUFFIX[kind]}"


def save_array(path: str | Path, array: np.ndarray) -> None:
    """``np.save``, atomically (a killed worker never leaves a truncated feature)."""
    with atomic_write(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def save_arrays(path: str | Path, **arrays: np.ndarray) -> None:
    """``np.savez`` of named arrays, atomically; read back with ``np.load(path, allow_pickle=False)``."""
    with atomic_write(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def write_text(path: str | Path, text: str) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(text)


def write_parquet(path: str | Path, frame) -> None:
    with atomic_write(path) as tmp:
        frame.to_parquet(tmp, index=False)


def source_fingerprint(path: str | Path) -> str:
    """Size and modification time of a clip: a clip replaced in place must be prepared again."""
    try:
        st = os.stat(path)
    except OSError:
        return ""
    return f"{st.st_size}:{st.st_mtime_ns}"


def is_done(root: Path, row: dict | None, clip_path: str | Path) -> bool:
    """A journal row counts as done when its features exist and the clip is unchanged since."""
    return (
        row is not None
        and row.get("source") == source_fingerprint(clip_path)
        and features_present(root, row)
    )


def features_present(root: Path, row: dict) -> bool:
    """Whether the feature files a journal row names still exist."""
    return all((Path(root) / row[k]).is_file() for k in FEATURE_FILES.values() if _text(row.get(k)))


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def finished(root: Path, frame: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """(done mask, current source fingerprints) of clips joined with their journal rows.

    ``frame`` has ``path``, ``exists`` and the journal's ``source`` and
    feature files (NA where the clip has no row). A clip is
    done when it exists, is unchanged since its row was written and the row's
    feature files exist. One pass, no per-clip objects kept beyond the two results.
    """
    done = np.zeros(len(frame), dtype=bool)
    sources: list[str] = []
    columns = (frame[c] for c in ("path", "exists", "source", *FEATURE_FILES.values()))
    for i, (path, exists, source, *files) in enumerate(zip(*columns)):
        current = source_fingerprint(path) if exists else ""
        sources.append(current)
        if exists and _text(source) == current and current:
            done[i] = all((Path(root) / f).is_file() for f in map(_text, files) if f)
    return done, sources


def find_donors(cfg, root: Path) -> dict[str, list[Path]]:
    """Sibling caches of ``root`` holding the same features of a kind (``'mel'``, ``'faces'``, ``'sync'``)."""
    mine = feature_params(cfg.prepare)
    donors: dict[str, list[Path]] = {kind: [] for kind in LENT_WITH}
    for params_file in sorted(Path(cfg.data.cache_dir).glob("prep-*/params.json")):
        other = params_file.parent
        if other.resolve() == Path(root).resolve():
            continue
        try:
            theirs = json.loads(params_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for kind in donors:
            if all(theirs.get(k) == mine.get(k) for k in (*SHARED_KEYS, *LENT_WITH[kind])):
                donors[kind].append(other)
    return donors


def attach_donors(todo: pd.DataFrame, donors: dict[str, list[Path]]) -> pd.DataFrame:
    """``todo`` (key, ``current_source``) plus ``borrow_<kind>``: JSON of a donor's finished half, or NA.

    A half is lent when the donor made it from the same file (same
    fingerprint), its status is worth borrowing and its feature file exists.
    Donors' journals are read as compact tables, one donor at a time.
    """
    for kind, roots in donors.items():
        column = f"borrow_{kind}"
        todo[column] = pd.array([None] * len(todo), dtype="string[pyarrow]")
        for donor in roots:
            _lend(todo, column, kind, donor)
    return todo


def _lend(todo: pd.DataFrame, column: str, kind: str, donor: Path) -> None:
    """Fill ``todo[column]`` where still empty with the halves ``donor`` can lend."""
    lent = read_journal_table(donor, ("source", "error", *KIND_FIELDS[kind]))
    lent = lent[lent[KIND_STATUS[kind]].isin(BORROWABLE[kind]).fillna(False)].set_index(list(KEY_FIELDS))
    rows = lent.reindex(pd.MultiIndex.from_frame(todo[list(KEY_FIELDS)]))
    same = rows["source"].fillna("").to_numpy(dtype=object) == todo["current_source"].to_numpy(dtype=object)
    where = todo.columns.get_loc(column)
    for i in np.flatnonzero(same & todo[column].isna().to_numpy()):
        record = plain_record(rows.iloc[i].to_dict())
        file = _text(record.get(FEATURE_FILES[kind]))
        if not file or (donor / file).is_file():
            todo.iloc[i, where] = json.dumps({"root": str(donor), "row": record})


def link_feature(src: Path, dst: Path) -> None:
    """``dst`` as a hard link to ``src`` (a copy across file systems)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(dst) as tmp:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
