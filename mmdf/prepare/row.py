"""The one definition of a clip's manifest row: its fields, their meaning and dtypes, the statuses.

A row is made by :func:`mmdf.prepare.clip.process_clip`, appended to the
journal as one JSON line (:meth:`ManifestRow.record`) and becomes one line of
the manifest (the fields of :data:`ROW_COLUMNS`, after the label columns).

Statuses (per modality in ``audio_status`` / ``visual_status``; overall in
``status``, the first problem in :data:`STATUS_ORDER`, else ``ok``):

- ``ok``: features made; a branch uses a modality whose status is ``ok``.
- ``missing``: the file named in the label file does not exist.
- ``corrupt``: the file (or that stream) cannot be opened or decoded.
- ``truncated``: the streams stop short of the durations the container
  declares (a download cut short): less decoded than
  ``1 - prepare.truncated_tolerance`` of the used span (and more than 0.1 s
  missing). With ``prepare.truncated: skip`` (default) the truncated
  modality gets status ``truncated`` and no features; with ``use`` it keeps
  the features made from what decoded and its own status (``ok``), while the
  overall ``status`` still says ``truncated``. ``audio_share`` /
  ``video_share`` say how much decoded.
- ``too_short``: the stream is shorter than ``prepare.min_duration``.
- ``no_audio``: no audio track (or one without samples).
- ``no_video``: no video stream (an audio-only file): the visual branch has
  nothing to score, as with ``no_face``; the audio is used.
- ``no_face``: no face in any sampled frame.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

STATUSES = ("ok", "truncated", "no_audio", "no_video", "no_face", "too_short", "corrupt", "missing")
# A clip's overall status is its first problem in this order.
STATUS_ORDER = ("missing", "corrupt", "truncated", "too_short", "no_audio", "no_video", "no_face")
KEY_FIELDS = ("split", "video_name")

NAN = float("nan")


def _col(dtype: str, kind: str | None = None, journal_only: bool = False, **kw) -> Any:
    """A row field: its manifest dtype, the feature half that fills it (``mel``/``faces``), if any."""
    return field(metadata={"dtype": dtype, "kind": kind, "journal_only": journal_only}, **kw)


@dataclass
class ManifestRow:
    """One clip's result: statuses, what decoded, and its cached features (paths relative to the cache)."""

    split: str = _col("str")
    video_name: str = _col("str")
    status: str = _col("str", default="ok")
    error: str = _col("str", default="")  # every problem, "audio: ...; video: ..."
    audio_status: str = _col("str", kind="mel", default="ok")
    visual_status: str = _col("str", kind="faces", default="ok")
    duration: float = _col("float", default=NAN)  # seconds, the longest stream (container duration as fallback)
    has_audio: bool = _col("bool", default=False)
    frames_sampled: int = _col("int32", kind="faces", default=0)
    frames_with_face: int = _col("int32", kind="faces", default=0)
    face_conf_mean: float = _col("float", kind="faces", default=NAN)
    # share of the used span of each stream that decoded (1.0 = whole); NaN where not decoded
    audio_share: float = _col("float", kind="mel", default=NAN)
    video_share: float = _col("float", kind="faces", default=NAN)
    # seconds of the clip the features come from: all of it, or its middle prepare.max_duration seconds
    span_start: float = _col("float", default=NAN)
    span_end: float = _col("float", default=NAN)
    mel_file: str = _col("str", kind="mel", default="")
    faces_file: str = _col("str", kind="faces", default="")
    # the sync half: mouth and audio over a window of frames (mmdf.prepare.mouth); needs both streams
    sync_status: str = _col("str", kind="sync", default="ok")
    sync_file: str = _col("str", kind="sync", default="")
    prepared_at: float = _col("float", journal_only=True, default=0.0)
    source: str = _col("str", journal_only=True, default="")  # size:mtime of the clip (see cache.source_fingerprint)

    @classmethod
    def failed(cls, split: str, video_name: str, status: str, error: str, source: str = "") -> "ManifestRow":
        """A clip whose features could not be made at all (missing or unreadable file)."""
        return cls(split, video_name, status=status, error=error, audio_status=status, visual_status=status,
                   sync_status=status, source=source)

    @classmethod
    def from_record(cls, record: dict) -> "ManifestRow":
        """A row from a journal line; fields added since it was written take their defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in names})

    def record(self) -> dict:
        """Plain dict of every field (a journal line)."""
        return dataclasses.asdict(self)

    def overall_status(self, truncated: bool = False) -> str:
        """First problem of the two modalities (and ``truncated`` when a stream stopped short); the sync
        half, made from both, says its own problems in ``sync_status`` only."""
        present = {self.audio_status, self.visual_status} | ({"truncated"} if truncated else set())
        return next((s for s in STATUS_ORDER if s in present), "ok")


def _fields(**wanted) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(ManifestRow) if all(f.metadata[k] == v for k, v in wanted.items())]


# manifest columns after the label columns (split, video_name, target, path)
ROW_COLUMNS = [f.name for f in _fields(journal_only=False) if f.name not in KEY_FIELDS]
DTYPES = {f.name: f.metadata["dtype"] for f in dataclasses.fields(ManifestRow)}
# the fields each half of the features fills in (a half borrowed from a sibling cache copies these)
KIND_FIELDS = {kind: tuple(f.name for f in _fields(kind=kind)) for kind in ("mel", "faces", "sync")}
FEATURE_FILES = {"mel": "mel_file", "faces": "faces_file", "sync": "sync_file"}
# faces: the encoded crops and their offsets (mmdf.prepare.store; ".npy", raw, in caches of older versions);
# sync: several arrays of one window
FEATURE_SUFFIX = {"mel": ".npy", "faces": ".npz", "sync": ".npz"}
KIND_STATUS = {"mel": "audio_status", "faces": "visual_status", "sync": "sync_status"}


def plain(value: Any) -> Any:
    """A table cell as JSON-ready Python: NA -> None, numpy scalars -> Python numbers."""
    import numpy as np
    import pandas as pd

    if value is pd.NA:
        return None
    return value.item() if isinstance(value, np.generic) else value


def plain_record(record: dict) -> dict:
    return {k: plain(v) for k, v in record.items()}
