"""Frame scores -> one score per clip.

The visual branch scores every cached face crop; a clip's score summarises
them. ``mean_logit`` is the default (a few confident frames move it more than
a mean of probabilities would); ``confident`` is the DFDC winner's rule
(selimsef): if enough frames are confidently fake, average only those; if
nearly all are confidently real, average only those; else average all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def confident_rule(probs: np.ndarray, threshold: float = 0.8) -> float:
    """The DFDC winner's rule for one clip's frame probabilities.

    The original also asks for more than 11 confident frames (of 32); with the
    handful of frames cached per clip here only the ``size // 2.5`` part is kept.
    """
    probs = np.asarray(probs, dtype=np.float64)
    size = len(probs)
    fakes = probs > threshold
    if fakes.sum() > size // 2.5:
        return float(probs[fakes].mean())
    reals = probs < 1 - threshold
    if reals.sum() > 0.9 * size:
        return float(probs[reals].mean())
    return float(probs.mean())


def aggregate_clips(
    logits: np.ndarray, clip: np.ndarray, method: str = "mean_logit", topk: int = 3,
    threshold: float = 0.8,
) -> pd.Series:
    """Clip probability per clip id from item logits; ``clip`` gives each item's clip id.

    Returns a Series indexed by clip id (sorted). One item per clip (the audio
    branch) gives back sigmoid(logit) for every method.
    """
    frame = pd.DataFrame({"clip": np.asarray(clip), "logit": np.asarray(logits, dtype=np.float64)})
    frame["prob"] = sigmoid(frame["logit"].to_numpy())
    groups = frame.groupby("clip", sort=True)
    if method == "mean_logit":
        return pd.Series(sigmoid(groups["logit"].mean().to_numpy()), index=groups["logit"].mean().index)
    if method == "mean":
        return groups["prob"].mean()
    if method == "median":
        return groups["prob"].median()
    if method == "topk":
        return groups["prob"].apply(lambda p: float(np.sort(p.to_numpy())[::-1][:topk].mean()))
    if method == "confident":
        return groups["prob"].apply(lambda p: confident_rule(p.to_numpy(), threshold))
    raise ValueError(f"unknown aggregation {method!r}")
