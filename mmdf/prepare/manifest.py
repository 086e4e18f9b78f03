"""The manifest: one row per clip of the label files, with its status and cached features.

Columns (the contract the trainer and stacker rely on)::

    split, video_name, target (Int8, NA for test), path, status, error,
    audio_status, visual_status, duration, has_audio, frames_sampled,
    frames_with_face, face_conf_mean, mel_file, faces_file

``status`` is the clip's first problem in the order missing, corrupt,
too_short, no_audio, no_face (else ``ok``); ``mel_file``/``faces_file`` are
absolute paths of the cached ``.npy`` files, or ``""`` where none was made.
On disk the feature paths are stored relative to the cache root, so a cache
can be moved or shared between machines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mmdf.errors import MmdfError, list_offenders
from mmdf.prepare.cache import cache_root, is_done, write_parquet

LABEL_COLUMNS = ["split", "video_name", "target", "path"]
ROW_COLUMNS = [
    "status", "error", "audio_status", "visual_status", "duration", "has_audio",
    "frames_sampled", "frames_with_face", "face_conf_mean", "mel_file", "faces_file",
]
COLUMNS = LABEL_COLUMNS + ROW_COLUMNS
STATUSES = ("ok", "no_audio", "no_face", "too_short", "corrupt", "missing")
MANIFEST_FILE = "manifest.parquet"


def missing_row(path: str) -> dict:
    return {
        "status": "missing", "error": f"file not found: {path}", "audio_status": "missing",
        "visual_status": "missing", "duration": np.nan, "has_audio": False, "frames_sampled": 0,
        "frames_with_face": 0, "face_conf_mean": np.nan, "mel_file": "", "faces_file": "",
    }


def assemble_manifest(clips: pd.DataFrame, rows: list[dict], root: Path, absolute: bool = True) -> pd.DataFrame:
    """Label columns of ``clips`` side by side with one result row per clip, in the contract's dtypes."""
    out = clips.reindex(columns=LABEL_COLUMNS).reset_index(drop=True)
    out["target"] = out["target"].astype("Int8")
    results = pd.DataFrame([{k: r.get(k) for k in ROW_COLUMNS} for r in rows], columns=ROW_COLUMNS)
    for col in results:
        out[col] = results[col].to_numpy()
    for col in ("status", "error", "audio_status", "visual_status", "mel_file", "faces_file"):
        out[col] = out[col].fillna("").astype(str)
    out["duration"] = out["duration"].astype(float)
    out["face_conf_mean"] = out["face_conf_mean"].astype(float)
    out["has_audio"] = out["has_audio"].fillna(False).astype(bool)
    out["frames_sampled"] = out["frames_sampled"].fillna(0).astype("int32")
    out["frames_with_face"] = out["frames_with_face"].fillna(0).astype("int32")
    if absolute:
        out = absolutize(out, root)
    return out


def absolutize(manifest: pd.DataFrame, root: Path) -> pd.DataFrame:
    root = Path(root).resolve()
    for col in ("mel_file", "faces_file"):
        manifest[col] = [str(root / p) if p and not Path(p).is_absolute() else p for p in manifest[col]]
    return manifest


def build_manifest(clips: pd.DataFrame, journal: dict, root: Path) -> pd.DataFrame:
    """Manifest of ``clips`` (from ``load_dataset(missing='keep')``) from the journal rows.

    Every clip is accounted for: a file that does not exist is ``missing``;
    an existing clip with no finished row raises :class:`MmdfError` (a shard
    has not run, or its features were deleted), never a silent gap.
    """
    rows, unfinished = [], []
    for clip in clips.itertuples(index=False):
        row = journal.get((clip.split, clip.video_name))
        if not clip.exists:
            rows.append(missing_row(clip.path))
        elif not is_done(root, row, clip.path):
            unfinished.append(f"{clip.split}/{clip.video_name}")
            rows.append({})
        else:
            rows.append(row)
    if unfinished:
        raise MmdfError(
            f"{len(unfinished)} clip(s) have not been prepared in {root}: {list_offenders(unfinished)}; "
            "run `mmdf prepare` for every shard (--shard i/N) until each finishes, then `mmdf prepare --merge`"
        )
    return assemble_manifest(clips, rows, root)


def write_manifest(manifest: pd.DataFrame, root: Path) -> Path:
    """Store with feature paths relative to ``root`` (atomic write)."""
    root_abs = Path(root).resolve()
    stored = manifest.copy()
    for col in ("mel_file", "faces_file"):
        stored[col] = [str(Path(p).relative_to(root_abs)) if p else "" for p in stored[col]]
    path = Path(root) / MANIFEST_FILE
    write_parquet(path, stored)
    return path


def manifest_path(cfg) -> Path:
    return cache_root(cfg) / MANIFEST_FILE


def load_manifest(cfg, check_labels: bool = True) -> pd.DataFrame:
    """The finished manifest for the config's data and prepare parameters (contract columns).

    Raises :class:`MmdfError` when it has not been made yet or no longer matches
    the label files (clips added or removed since).
    """
    path = manifest_path(cfg)
    if not path.is_file():
        raise MmdfError(
            f"no prepared manifest for these data and prepare parameters ({path} is absent); "
            "run `mmdf prepare --config <your config>` first (with the same data.* and prepare.* settings)"
        )
    manifest = absolutize(pd.read_parquet(path), path.parent)
    manifest["target"] = manifest["target"].astype("Int8")
    if check_labels:
        from mmdf.data.labels import load_dataset

        clips = load_dataset(cfg.data, missing="keep")
        want = set(zip(clips["split"], clips["video_name"]))
        have = set(zip(manifest["split"], manifest["video_name"]))
        if want != have:
            extra = sorted(f"{s}/{v}" for s, v in want - have)
            gone = sorted(f"{s}/{v}" for s, v in have - want)
            detail = (f"not in the manifest: {list_offenders(extra)}" if extra else "") + (
                ("; " if extra else "") + f"no longer in the label files: {list_offenders(gone)}" if gone else ""
            )
            raise MmdfError(
                f"the manifest {path} does not match the label files ({detail}); "
                "run `mmdf prepare --config <your config>` again (finished clips are reused)"
            )
    return manifest[COLUMNS]
