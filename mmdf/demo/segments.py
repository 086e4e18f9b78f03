"""Where each demo clip is manipulated, per modality: the labels its segment scores are checked against.

The demo's manipulations span whole clips: a face swap is blended into every
frame, a cloned voice replaces the whole track, a sync fake's mouth is out of
step throughout (shifted by its offset, or following another utterance). So a
manipulated modality's span is the whole clip, and every other modality of a
clip (all three of a real clip) gets a span labelled real. The table
(``segment_labels.csv`` beside ``manifest.csv``) has one row per clip and
modality: ``video_name, split, modality, start_s, end_s, fake``; a scored
segment is fake where it overlaps a fake span of its modality
(:func:`mmdf.predict.segments.label_segments`). A clip without a face has no
visual or sync row, one without audio no audio or sync row: nothing there to
localise.
"""

from __future__ import annotations

import pandas as pd

from mmdf.demo.plan import ClipSpec

SEGMENT_LABELS = "segment_labels.csv"


def clip_spans(spec: ClipSpec) -> list[dict]:
    """The rows of one clip: each modality it has, fake (1) over the whole clip where manipulated, else 0."""
    fake = {"visual": spec.fake_video, "audio": spec.fake_audio, "sync": spec.fake_sync}
    present = {"visual": spec.has_face, "audio": spec.has_audio, "sync": spec.has_face and spec.has_audio}
    return [{"video_name": spec.video_name, "split": spec.split, "modality": m, "start_s": 0.0,
             "end_s": round(spec.duration, 4), "fake": int(fake[m])} for m in ("visual", "audio", "sync") if present[m]]


def segment_labels(specs: list[ClipSpec]) -> pd.DataFrame:
    """The whole dataset's table (see the module docstring)."""
    return pd.DataFrame([row for s in specs for row in clip_spans(s)],
                        columns=["video_name", "split", "modality", "start_s", "end_s", "fake"])
