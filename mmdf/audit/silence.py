"""Where the sound of a clip starts and ends: a 20 ms RMS envelope against a threshold below its peak.

Leading silence is a known shortcut of AV deepfake benchmarks (AVH-Align,
arXiv 2412.00175: in FakeAVCeleb and AV-Deepfake1M it alone separates real from
fake); the probes measure it and the silence perturbations edit it, with this one
definition.
"""

from __future__ import annotations

import numpy as np

FRAME_S = 0.02  # envelope frame, seconds
THRESHOLD_DB = -40.0  # a frame is sound when its RMS is within this of the peak sample's level


def rms_envelope(signal: np.ndarray, rate: int, frame_s: float = FRAME_S) -> np.ndarray:
    """RMS of consecutive ``frame_s`` frames of a mono signal (the last partial frame included)."""
    signal = np.asarray(signal, np.float64).reshape(-1)
    hop = max(1, int(round(frame_s * rate)))
    n = -(-len(signal) // hop)
    padded = np.zeros(n * hop)
    padded[: len(signal)] = signal
    return np.sqrt((padded.reshape(n, hop) ** 2).mean(axis=1))


def sound_span(signal: np.ndarray, rate: int, threshold_db: float = THRESHOLD_DB,
               frame_s: float = FRAME_S) -> tuple[float, float] | None:
    """(start, end) seconds from the first to the end of the last frame above the threshold; None if all silent."""
    signal = np.asarray(signal).reshape(-1)
    peak = float(np.abs(signal).max()) if len(signal) else 0.0
    if peak <= 0:
        return None
    loud = np.flatnonzero(rms_envelope(signal, rate, frame_s) > peak * 10 ** (threshold_db / 20))
    if not len(loud):
        return None
    hop = max(1, int(round(frame_s * rate)))
    return loud[0] * hop / rate, min(len(signal), (loud[-1] + 1) * hop) / rate


def leading_silence(signal: np.ndarray, rate: int, threshold_db: float = THRESHOLD_DB) -> float:
    """Seconds before the first frame of sound; the whole length for a silent track."""
    span = sound_span(signal, rate, threshold_db)
    return len(np.asarray(signal).reshape(-1)) / rate if span is None else span[0]
