"""Where prepared features live, keyed by the parameters that made them, and crash-safe writes.

Layout under ``<data.cache_dir>/prep-<key>/`` (``key`` hashes the feature
parameters, so changing ``n_mels`` or ``num_frames`` starts a new cache and the
same parameters reuse it)::

    params.json                      the parameters behind the key
    mel/<split>/<clip>.npy           (H, W) uint8 mel image
    faces/<split>/<clip>.npy         (N, S, S, 3) uint8 face crops
    journal/shard-<i>-of-<n>.jsonl   one line per finished clip, appended as clips finish
    manifest.parquet                 every clip of the label files, written at the end

Every file is written under a temporary name and renamed, so a killed run
leaves either a whole file or none; a torn last journal line is ignored.

Caches whose keys differ in one half only (an ablation of ``n_mels`` keeps
the face parameters) share the other half: :func:`find_donors` finds the
sibling caches made with the same face (or mel) parameters, and a clip's
features are linked from there instead of being computed again.
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

from mmdf.files import atomic_write

# Bump when the feature code changes what it writes for the same parameters.
FEATURE_VERSION = 1
# The row fields each half of the features fills in (see mmdf.prepare.clip.process_clip).
KIND_FIELDS = {
    "mel": ("audio_status", "mel_file"),
    "faces": ("visual_status", "faces_file", "frames_sampled", "frames_with_face", "face_conf_mean"),
}
# Statuses of a half worth borrowing: the costly outcomes (the others are found before any work).
BORROWABLE = {"mel": ("ok",), "faces": ("ok", "no_face")}
# Parameters that change how fast features are made, not what they are.
NOT_IN_KEY = {"workers", "device", "progress", "isolate", "batch_size"}


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
    return {"version": FEATURE_VERSION, **_key_fields(prepare_cfg)}


def cache_key(prepare_cfg) -> str:
    blob = json.dumps(feature_params(prepare_cfg), sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def cache_root(cfg) -> Path:
    """``<data.cache_dir>/prep-<key>`` for a :class:`mmdf.config.Config`."""
    return Path(cfg.data.cache_dir) / f"prep-{cache_key(cfg.prepare)}"


def clip_stem(split: str, video_name: str, path: str | Path | None = None) -> str:
    """File stem of a clip's features; clips outside the label files get a path hash (names may repeat)."""
    stem = Path(video_name).stem
    if split == "predict" and path is not None:
        digest = hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:8]
        stem = f"{stem}-{digest}"
    return stem


def feature_relpath(kind: str, split: str, stem: str) -> str:
    """Path of a feature file relative to the cache root (``kind`` is 'mel' or 'faces')."""
    return f"{kind}/{split}/{stem}.npy"


def save_array(path: str | Path, array: np.ndarray) -> None:
    """``np.save``, atomically (a killed worker never leaves a truncated feature)."""
    with atomic_write(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def write_text(path: str | Path, text: str) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(text)


def write_parquet(path: str | Path, frame) -> None:
    with atomic_write(path) as tmp:
        frame.to_parquet(tmp, index=False)


def read_journal(root: Path) -> dict[tuple[str, str], dict]:
    """Finished clips from every shard's journal: (split, video_name) -> row; the latest row wins."""
    rows: dict[tuple[str, str], dict] = {}
    journal_dir = Path(root) / "journal"
    if not journal_dir.is_dir():
        return rows
    for file in sorted(journal_dir.glob("*.jsonl")):
        with open(file, encoding="utf-8") as fh:
            for line in fh:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # torn last line of a killed run
                key = (row["split"], row["video_name"])
                if key not in rows or row.get("prepared_at", 0) >= rows[key].get("prepared_at", 0):
                    rows[key] = row
    return rows


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
    return all((Path(root) / row[k]).is_file() for k in ("mel_file", "faces_file") if row.get(k))


def find_donors(cfg, root: Path) -> dict[str, list[Path]]:
    """Sibling caches of ``root`` holding the same mel (``'mel'``) or face (``'faces'``) features."""
    mine = feature_params(cfg.prepare)
    same = {"mel": ("version", "min_duration", "mel"), "faces": ("version", "min_duration", "faces")}
    donors: dict[str, list[Path]] = {"mel": [], "faces": []}
    for params_file in sorted(Path(cfg.data.cache_dir).glob("prep-*/params.json")):
        other = params_file.parent
        if other.resolve() == Path(root).resolve():
            continue
        try:
            theirs = json.loads(params_file.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        for kind, keys in same.items():
            if all(theirs.get(k) == mine.get(k) for k in keys):
                donors[kind].append(other)
    return donors


def borrowable(donors: dict[str, list[Path]]) -> dict[tuple[str, str], dict[str, tuple[str, dict]]]:
    """(split, video_name) -> {kind: (donor root, donor journal row)} for the donors' finished halves."""
    out: dict[tuple[str, str], dict[str, tuple[str, dict]]] = {}
    for kind, roots in donors.items():
        for donor in roots:
            for key, row in read_journal(donor).items():
                file = row.get(f"{kind}_file")
                if row.get(KIND_FIELDS[kind][0]) not in BORROWABLE[kind]:
                    continue
                if file and not (donor / file).is_file():
                    continue
                out.setdefault(key, {}).setdefault(kind, (str(donor), row))
    return out


def link_feature(src: Path, dst: Path) -> None:
    """``dst`` as a hard link to ``src`` (a copy across file systems)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(dst) as tmp:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
