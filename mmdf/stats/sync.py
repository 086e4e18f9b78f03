"""Sync statistics of a clip's window (:class:`mmdf.prepare.mouth.SyncTrack`), without training.

- **Agreement**: the lag-swept normalised cross-correlation, over -15..+15
  frames, of the mouth with the voice: its opening (the first principal
  component of the grey mouth crops, which a speaking mouth dominates) and
  the contrast of the band between the lips (an open mouth shows its dark
  inside and teeth) against the loudness envelope, and its motion (mean
  absolute frame difference) against the envelope's change. Per pair: the peak, its lag, its
  sharpness (peak over the median) and the value at lag 0. A real talking
  face peaks near lag 0; a dubbed clip or one whose audio is offset peaks
  elsewhere or nowhere. The opening's sign is arbitrary, so its correlation is
  taken in absolute value.
- **Mouth-region artefacts**: mean, spread and frame-to-frame jitter of the
  mouth region's sharpness, high-frequency share and colour against the upper
  face (:data:`mmdf.prepare.mouth.ARTEFACTS`): what gives away a generator that
  re-renders the mouth to follow the voice, which agreement alone does not.
"""

from __future__ import annotations

import numpy as np

FEATURE_VERSION = 1
MAX_LAG = 15  # frames each way (0.6 s at 25 fps)
PAIRS = ("open", "band", "motion")
ARTEFACTS = ("log_sharpness_ratio", "log_hf_ratio", "colour_distance")  # as mmdf.prepare.mouth stores them


def lag_correlation(a: np.ndarray, b: np.ndarray, max_lag: int = MAX_LAG) -> np.ndarray:
    """Pearson correlation of ``a[t]`` with ``b[t + lag]`` for lag -max_lag..max_lag (NaN where the overlap
    is under 8 frames or flat)."""
    out = np.full(2 * max_lag + 1, np.nan)
    for i, lag in enumerate(range(-max_lag, max_lag + 1)):
        x, y = (a[:len(a) - lag], b[lag:]) if lag >= 0 else (a[-lag:], b[:len(b) + lag])
        n = min(len(x), len(y))
        x, y = x[:n], y[:n]
        if n >= 8 and x.std() > 1e-9 and y.std() > 1e-9:
            out[i] = float(np.corrcoef(x, y)[0, 1])
    return out


def mouth_signals(mouth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(opening (T,), band contrast (T,), motion (T-1,)) of grey mouth crops (T, S, S)."""
    x = mouth.reshape(len(mouth), -1).astype(np.float32) / 255.0
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    s = mouth.shape[1]
    band = mouth[:, s // 3: 2 * s // 3, s // 4: 3 * s // 4].astype(np.float32) / 255.0  # lips and the gap between
    return centred @ vt[0], band.std(axis=(1, 2)), np.abs(np.diff(x, axis=0)).mean(axis=1)


def agreement(name: str, curve: np.ndarray) -> dict[str, float]:
    """Peak, lag of the peak, sharpness and lag-0 value of one lag-correlation curve."""
    if np.isnan(curve).all():
        return dict.fromkeys([f"{name}_peak", f"{name}_lag", f"{name}_sharpness", f"{name}_at0"], np.nan)
    best = int(np.nanargmax(curve))
    return {f"{name}_peak": float(curve[best]), f"{name}_lag": float(best - MAX_LAG),
            f"{name}_sharpness": float(curve[best] - np.nanmedian(curve)), f"{name}_at0": float(curve[MAX_LAG])}


def sync_features(track) -> dict[str, float]:
    """The features of one clip's window (a mapping with ``mouth``, ``envelope`` and ``artefacts``)."""
    opening, band, motion = mouth_signals(np.asarray(track["mouth"]))
    envelope = np.asarray(track["envelope"], dtype=np.float64)
    out = {**agreement("open", np.abs(lag_correlation(opening, envelope))),
           **agreement("band", lag_correlation(band, envelope)),
           **agreement("motion", lag_correlation(motion, np.abs(np.diff(envelope))))}
    out["open_offset"] = out["open_peak"] - out["open_at0"]  # how much better a shifted voice fits
    artefacts = np.asarray(track["artefacts"], dtype=np.float64)
    for j, name in enumerate(ARTEFACTS):
        col = artefacts[:, j]
        out.update({f"{name}_mean": float(col.mean()), f"{name}_std": float(col.std()),
                    f"{name}_jitter": float(np.abs(np.diff(col)).mean()) if len(col) > 1 else np.nan})
    return out


def sync_feature_names() -> list[str]:
    names = [f"{p}_{s}" for p in PAIRS for s in ("peak", "lag", "sharpness", "at0")] + ["open_offset"]
    return names + [f"{a}_{s}" for a in ARTEFACTS for s in ("mean", "std", "jitter")]
