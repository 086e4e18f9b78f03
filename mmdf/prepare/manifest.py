"""The manifest: one row per clip of the label files, with its status and cached features.

Columns (the contract the trainer and stacker rely on): the label columns
``split, video_name, target (Int8, NA for test), path``, then the fields of
:class:`mmdf.prepare.row.ManifestRow` named in ``ROW_COLUMNS``::

    status, error, audio_status, visual_status, duration, has_audio,
    frames_sampled, frames_with_face, face_conf_mean, audio_share,
    video_share, span_start, span_end, mel_file, faces_file, sync_status, sync_file

``status`` is the clip's first problem in the order of
:data:`mmdf.prepare.row.STATUS_ORDER` (missing, corrupt, truncated,
too_short, no_audio, no_video, no_face), else ``ok``; the module docstring of
:mod:`mmdf.prepare.row` says what each status means. A branch uses a
modality whose own status (``audio_status``/``visual_status``/``sync_status``) is ``ok``.
``mel_file``/``faces_file``/``sync_file`` are absolute paths of the cached feature files,
or ``""`` where none was made. On disk the feature paths are stored relative
to the cache root, so a cache can be moved or shared between machines.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mmdf.data.labels import load_dataset
from mmdf.errors import MmdfError, list_offenders
from mmdf.prepare.cache import cache_root, finished, write_parquet
from mmdf.prepare.row import DTYPES, FEATURE_FILES, KEY_FIELDS, ROW_COLUMNS, STATUSES, ManifestRow  # noqa: F401

LABEL_COLUMNS = ["split", "video_name", "target", "path"]
COLUMNS = LABEL_COLUMNS + ROW_COLUMNS
MANIFEST_FILE = "manifest.parquet"


def missing_row(split: str, video_name: str, path: str) -> ManifestRow:
    """The row of a clip whose file does not exist."""
    return ManifestRow.failed(split, video_name, "missing", f"file not found: {path}")


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """The row columns of ``frame`` in the contract's dtypes (in place; empty values filled)."""
    for column in ROW_COLUMNS:
        kind = DTYPES[column]
        if kind == "str":
            frame[column] = frame[column].fillna("").astype(str)
        elif kind == "float":
            frame[column] = frame[column].astype(float)
        elif kind == "bool":
            frame[column] = frame[column].fillna(False).astype(bool)
        else:
            frame[column] = frame[column].fillna(0).astype(kind)
    frame["target"] = frame["target"].astype("Int8")
    return frame


def assemble_manifest(clips: pd.DataFrame, rows: list, root: Path, absolute: bool = True) -> pd.DataFrame:
    """Label columns of ``clips`` side by side with one row (:class:`ManifestRow` or record) per clip."""
    out = clips.reindex(columns=LABEL_COLUMNS).reset_index(drop=True)
    records = [r.record() if isinstance(r, ManifestRow) else (r or {}) for r in rows]
    results = pd.DataFrame([{k: r.get(k) for k in ROW_COLUMNS} for r in records], columns=ROW_COLUMNS)
    for column in ROW_COLUMNS:
        out[column] = results[column].to_numpy()
    out = typed(out)
    return absolutize(out, root) if absolute else out


def absolutize(manifest: pd.DataFrame, root: Path) -> pd.DataFrame:
    root = Path(root).resolve()
    for col in FEATURE_FILES.values():
        manifest[col] = [str(root / p) if p and not Path(p).is_absolute() else p for p in manifest[col]]
    return manifest


def build_manifest(clips: pd.DataFrame, table: pd.DataFrame, root: Path, absolute: bool = True) -> pd.DataFrame:
    """Manifest of ``clips`` (from ``load_dataset(missing='keep')``) from the journal ``table``.

    Every clip is accounted for: a file that does not exist is ``missing``;
    an existing clip with no finished row raises :class:`MmdfError` (a shard
    has not run, or its features were deleted), never a silent gap.
    """
    merged = clips[[*LABEL_COLUMNS, "exists"]].merge(
        table.drop(columns=[c for c in table if c not in (*KEY_FIELDS, *ROW_COLUMNS, "source")]),
        on=list(KEY_FIELDS), how="left", validate="one_to_one",
    )
    done, _ = finished(root, merged)
    unfinished = merged["exists"].to_numpy(dtype=bool) & ~done
    if unfinished.any():
        names = (merged["split"][unfinished] + "/" + merged["video_name"][unfinished]).tolist()
        raise MmdfError(
            f"{len(names)} clip(s) have not been prepared in {root}: {list_offenders(names)}; "
            "run `mmdf prepare` for every shard (--shard i/N) until each finishes, then `mmdf prepare --merge`"
        )
    missing = ~merged["exists"].to_numpy(dtype=bool)
    out = _fill_missing(typed(merged[COLUMNS]), missing)
    return absolutize(out, root) if absolute else out


def _fill_missing(frame: pd.DataFrame, missing) -> pd.DataFrame:
    """Rows of clips whose file is gone: status ``missing`` whatever an older journal row said."""
    if not missing.any():
        return frame
    defaults = missing_row("", "", "").record()
    for column in ROW_COLUMNS:
        values = ["file not found: " + p for p in frame["path"][missing]] if column == "error" else defaults[column]
        frame.loc[missing, column] = values
    return frame


def write_manifest(manifest: pd.DataFrame, root: Path) -> Path:
    """Store with feature paths relative to ``root`` (atomic write); relative paths are stored as they are."""
    root_abs = Path(root).resolve()
    stored = manifest.copy()
    for col in FEATURE_FILES.values():
        stored[col] = [str(Path(p).relative_to(root_abs)) if p and Path(p).is_absolute() else p for p in stored[col]]
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
    lacking = [c for c in COLUMNS if c not in manifest]
    if lacking:
        raise MmdfError(f"the manifest {path} lacks column(s) {', '.join(lacking)} (written by an older mmdf); "
                        "run `mmdf prepare --config <your config>` again")
    manifest["target"] = manifest["target"].astype("Int8")
    if check_labels:
        _check_labels(cfg, manifest, path)
    return manifest[COLUMNS]


def _check_labels(cfg, manifest: pd.DataFrame, path: Path) -> None:
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
