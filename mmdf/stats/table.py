"""One row of statistics per manifest row, from the cached arrays, cached itself in a parquet file.

The features are cheap (hundreds of clips a second) but FFDV has tens of
thousands of clips, so the table is kept in a parquet file whose metadata
holds its key (the feature version and the parameters they depend on). A file
with the same key is reused row by row: only clips it lacks, or whose
status or cached array changed, are computed; a different key recomputes all.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from mmdf.files import atomic_write
from mmdf.prepare.cache import SYNC_VERSION
from mmdf.prepare.config import FaceConfig, MelConfig, PrepareConfig
from mmdf.prepare.store import load_crops, read_sync
from mmdf.stats import audio, sync, visual

# kind -> (manifest status column, manifest file column)
KINDS = {"audio": ("audio_status", "mel_file"), "visual": ("visual_status", "faces_file"),
         "sync": ("sync_status", "sync_file")}
# how each kind's cached file is read
READERS = {"mel_file": lambda p: np.load(p, allow_pickle=False), "faces_file": load_crops, "sync_file": read_sync}
KEY_FIELD = b"mmdf_stats_key"
ROW_ID = "_row_id"


def _audio_spec(params: Any) -> tuple[Callable[[np.ndarray], dict], list[str], dict]:
    cfg = params.mel if isinstance(params, PrepareConfig) else params
    if not isinstance(cfg, MelConfig):
        raise TypeError(f"audio statistics need a MelConfig or PrepareConfig, not {type(params).__name__}")
    key = {"kind": "audio", "version": audio.FEATURE_VERSION, "mel": dataclasses.asdict(cfg)}
    return (lambda a: audio.audio_features(a, cfg)), audio.audio_feature_names(cfg), key


def _visual_spec(params: Any) -> tuple[Callable[[np.ndarray], dict], list[str], dict]:
    margin = _margin(params)
    key = {"kind": "visual", "version": visual.FEATURE_VERSION, "margin": margin}
    faces = params.faces if isinstance(params, PrepareConfig) else params
    if isinstance(faces, FaceConfig):  # lossy storage changes the crops the statistics are taken on
        key.update(codec=faces.codec, quality=faces.quality)
    return (lambda a: visual.visual_features(a, margin)), visual.clip_feature_names(), key


def _sync_spec(params: Any) -> tuple[Callable[[Any], dict], list[str], dict]:
    if not isinstance(params, PrepareConfig):
        raise TypeError(f"sync statistics need a PrepareConfig, not {type(params).__name__}")
    # the sync arrays depend on the face half too: the mouth is placed by its landmarks (prepare.mouth)
    key = {"kind": "sync", "version": sync.FEATURE_VERSION, "sync_version": SYNC_VERSION,
           "sync": dataclasses.asdict(params.sync), "faces": dataclasses.asdict(params.faces)}
    return sync.sync_features, sync.sync_feature_names(), key


SPECS = {"audio": _audio_spec, "visual": _visual_spec, "sync": _sync_spec}


def feature_function(kind: str, params: Any) -> tuple[Callable[[np.ndarray], dict], list[str], dict]:
    """(array -> features, feature names, cache key) for ``kind``.

    ``params``: for audio a :class:`MelConfig` (or the :class:`PrepareConfig`
    holding it); for visual a :class:`FaceConfig`, a ``PrepareConfig`` or the
    crop margin as a float.
    """
    if kind not in SPECS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    return SPECS[kind](params)


def _margin(params: Any) -> float:
    if isinstance(params, PrepareConfig):
        return float(params.faces.margin)
    if isinstance(params, FaceConfig):
        return float(params.margin)
    if isinstance(params, (int, float)) and not isinstance(params, bool):
        return float(params)
    raise TypeError(f"visual statistics need a FaceConfig, PrepareConfig or margin, not {type(params).__name__}")


def stats_table(manifest: pd.DataFrame, kind: str, params: Any, cache_file: Path | None = None,
                progress: bool = True) -> pd.DataFrame:
    """Features of every manifest row (same index), with its ``split`` and ``video_name`` first.

    Rows whose ``audio_status`` / ``visual_status`` is not ``ok`` (or that
    have no cached file) get NaN features: a clip is never dropped. With
    ``cache_file`` the table is read from and written back to that parquet file.
    """
    from tqdm.auto import tqdm

    func, names, key = feature_function(kind, params)
    status_col, file_col = KINDS[kind]
    ids = row_ids(manifest, status_col, file_col)
    known = read_cached(cache_file, key) if cache_file is not None else {}
    usable = (manifest[status_col].to_numpy() == "ok") & (manifest[file_col].fillna("").to_numpy() != "")
    todo = [i for i, rid in enumerate(ids) if usable[i] and rid not in known]
    empty = dict.fromkeys(names, np.nan)
    rows = [known.get(rid, empty) for rid in ids]
    files = manifest[file_col].to_numpy()
    from threadpoolctl import threadpool_limits

    # one BLAS thread: the arrays are small, and a busy machine stalls BLAS's threads on each other
    with threadpool_limits(limits=1):
        for i in tqdm(todo, desc=f"{kind} statistics", unit="clip", disable=not (progress and todo)):
            rows[i] = func(load_feature(files[i], kind))
    table = pd.DataFrame([[r.get(n, np.nan) for n in names] for r in rows], index=manifest.index,
                         columns=names, dtype=float)
    table.insert(0, "video_name", manifest["video_name"].to_numpy())
    table.insert(0, "split", manifest["split"].to_numpy())
    if cache_file is not None and (todo or set(ids) != set(known)):
        write_cached(cache_file, table, ids, key)
    return table


def load_feature(path: str, kind: str = "audio"):
    """A cached feature of ``kind`` (see :data:`KINDS`): the mel image, the decoded face crops, the sync
    window's arrays with its mouth crops decoded (mmdf.prepare.store reads old raw caches as they are)."""
    return READERS[KINDS[kind][1]](path)


def row_ids(manifest: pd.DataFrame, status_col: str, file_col: str) -> list[str]:
    """What a cached row must match to be reused: split, clip, status and cached file name."""
    parts = zip(manifest["split"], manifest["video_name"], manifest[status_col], manifest[file_col].fillna(""))
    return ["|".join([str(s), str(v), str(st), Path(str(f)).name]) for s, v, st, f in parts]


def read_cached(path: Path, key: dict) -> dict[str, dict]:
    """Row id -> features from a cache file made with the same key; empty when absent or stale."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        return {}
    meta = pq.read_schema(path).metadata or {}
    if meta.get(KEY_FIELD) != json.dumps(key, sort_keys=True).encode():
        return {}
    frame = pd.read_parquet(path)
    features = frame.drop(columns=[ROW_ID, "split", "video_name"], errors="ignore")
    return dict(zip(frame[ROW_ID], features.to_dict("records")))


def write_cached(path: Path, table: pd.DataFrame, ids: list[str], key: dict) -> None:
    """Store the table with its row ids and key (atomic write)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = table.reset_index(drop=True).assign(**{ROW_ID: ids})
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(arrow.schema.metadata or {})
    meta[KEY_FIELD] = json.dumps(key, sort_keys=True).encode()
    with atomic_write(path) as tmp:
        pq.write_table(arrow.replace_schema_metadata(meta), tmp)
