"""Shortcut probes: how well one cheap property of a clip alone separates real from fake.

A benchmark whose fakes were made by one pipeline often differs from its real
clips in duration, encoding or leading silence; a model trained there can score
well by reading that cue and fail on a test set without it (AVH-Align, arXiv
2412.00175). Each cue's AUC is taken as ``max(AUC, 1 - AUC)`` with its direction,
since either way round it is a shortcut.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from mmdf.audit.media import decode_native_audio, probe_clip
from mmdf.audit.silence import leading_silence
from mmdf.metrics import SHORTCUT_AUC, cue_auc

log = logging.getLogger(__name__)

WARN_AT = SHORTCUT_AUC  # a single cue this separable deserves a look before submitting
CUES = {
    "duration_s": "clip duration (container), seconds",
    "leading_silence_s": "leading silence: first 20 ms frame above -40 dB of the peak, seconds",
    "audio_sample_rate": "audio sample rate, Hz",
    "bitrate": "overall bit rate, bit/s",
    "resolution": "video frame area, width x height pixels",
    "frame_rate": "video frame rate, frames/s",
}


def clip_cues(path: str | Path) -> dict:
    """The cheap cues of one clip; a cue the clip lacks (no audio, unreadable) is NaN."""
    cues = dict.fromkeys(CUES, np.nan)
    try:
        info = probe_clip(path)
    except Exception as exc:  # noqa: BLE001 - an unreadable clip has no cues, the others still count
        log.debug("probe of %s failed: %s", path, exc)
        return cues
    cues.update(duration_s=info.duration, bitrate=info.bitrate or np.nan,
                audio_sample_rate=info.sample_rate or np.nan,
                resolution=(info.width * info.height) if info.has_video else np.nan,
                frame_rate=float(info.fps) if info.fps else np.nan)
    if info.has_audio:
        try:
            signal, rate = decode_native_audio(path)
            cues["leading_silence_s"] = leading_silence(signal, rate)
        except Exception as exc:  # noqa: BLE001 - a broken audio track leaves only that cue unknown
            log.debug("audio of %s did not decode: %s", path, exc)
    return cues


def cue_table(paths: Iterable[str | Path], names: Iterable[str], progress: bool = True) -> pd.DataFrame:
    """``video_name`` and one column per cue, a row per clip."""
    from tqdm.auto import tqdm

    paths, names = list(paths), list(names)
    rows = [clip_cues(p) for p in tqdm(paths, desc="probes", unit="clip", disable=not progress, leave=False)]
    return pd.DataFrame(rows, columns=list(CUES)).assign(video_name=names)[["video_name", *CUES]]


def probe_aucs(cues: pd.DataFrame, targets: pd.Series, warn_at: float = WARN_AT) -> pd.DataFrame:
    """Per cue: clips with a value, AUC, ``max(AUC, 1 - AUC)``, direction and whether it warrants a warning."""
    y = pd.Series(np.asarray(targets), index=cues.index)
    rows = []
    for cue in CUES:
        known = cues[cue].notna()
        auc = cue_auc(y.to_numpy(), cues[cue].to_numpy(float))
        strength = max(auc, 1 - auc) if np.isfinite(auc) else np.nan
        direction = "-" if not np.isfinite(auc) or auc == 0.5 else (
            "higher in fakes" if auc > 0.5 else "lower in fakes")
        rows.append({"cue": cue, "n": int(known.sum()), "auc": auc, "separation": strength,
                     "direction": direction, "warning": bool(np.isfinite(strength) and strength >= warn_at)})
    return pd.DataFrame(rows)


def warning_lines(probes: pd.DataFrame, warn_at: float = WARN_AT) -> list[str]:
    """One sentence per cue at or above ``warn_at``, for the log and audit.md."""
    return [
        f"shortcut: {r.cue} ({CUES[r.cue]}) alone separates real from fake with AUC "
        f"{r.separation:.3f} ({r.direction}, {r.n} clips, warning at {warn_at:.2f}); a model may lean on it. "
        "Check that the test data shares it, or remove it from the training data."
        for r in probes.itertuples() if r.warning
    ]
