"""The challenge metric: ROC AUC, with TPR at FPR = 1e-3 as the tie-breaker.

Both come from scikit-learn's ROC curve so that they agree with each other
and with the organisers' scorer.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from mmdf.errors import MmdfError

DEFAULT_MAX_FPR = 1e-3
TPR_KEY = f"tpr@fpr={DEFAULT_MAX_FPR:g}"  # its name in every metrics.json
# A cue (or a metadata-only model) this separable on its own is a possible dataset shortcut: the
# stack's shortcut check and `mmdf audit`'s probes warn about it in words.
SHORTCUT_AUC = 0.65


def _check(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=float)
    if y_true.shape != y_score.shape or y_true.ndim != 1:
        raise MmdfError(f"labels and scores must be 1-D of equal length, got {y_true.shape} and {y_score.shape}")
    if np.isnan(y_score).any():
        raise MmdfError(f"{int(np.isnan(y_score).sum())} score(s) are NaN; fill or drop them before scoring")
    classes = set(np.unique(y_true).tolist())
    if not classes <= {0, 1}:
        raise MmdfError(f"labels must be 0 (real) or 1 (fake), got values {sorted(classes)}")
    if len(classes) < 2:
        only = "fake (1)" if classes == {1} else "real (0)" if classes == {0} else "none"
        raise MmdfError(f"ROC metrics need both real and fake clips, but all {len(y_true)} are {only}")
    return y_true.astype(int), y_score


def roc_auc(y_true, y_score) -> float:
    """Area under the ROC curve (ties count half, as in scikit-learn)."""
    y_true, y_score = _check(y_true, y_score)
    return float(roc_auc_score(y_true, y_score))


def tpr_at_fpr(y_true, y_score, max_fpr: float = DEFAULT_MAX_FPR) -> float:
    """The highest TPR among the ROC curve's points whose FPR is <= ``max_fpr``.

    The ROC curve is scikit-learn's (``drop_intermediate=False``): one point per
    distinct threshold, so tied scores move together and a threshold is never
    placed inside a tie. With fewer than ``1/max_fpr`` real clips this is the
    TPR at FPR = 0: the fraction of fakes scored above every real clip.
    """
    y_true, y_score = _check(y_true, y_score)
    fpr, tpr, _ = roc_curve(y_true, y_score, drop_intermediate=False)
    return float(tpr[fpr <= max_fpr].max())


def score_report(y_true, y_score, max_fpr: float = DEFAULT_MAX_FPR) -> dict:
    """AUC, TPR@FPR and counts, as stored in every ``metrics.json``."""
    y_true, y_score = _check(y_true, y_score)
    return {
        "auc": roc_auc(y_true, y_score),
        f"tpr@fpr={max_fpr:g}": tpr_at_fpr(y_true, y_score, max_fpr),
        "n": int(len(y_true)),
        "n_fake": int(y_true.sum()),
        "n_real": int(len(y_true) - y_true.sum()),
    }


def cue_auc(y_true, cue) -> float:
    """AUC of one cheap cue used as a score, clips without a value left out; NaN where the clips
    with a value are of one class. Either direction is a shortcut: read it as ``max(auc, 1 - auc)``."""
    y_true, cue = np.asarray(y_true), np.asarray(cue, dtype=float)
    known = ~np.isnan(cue)
    if len(np.unique(y_true[known])) < 2:
        return float("nan")
    return roc_auc(y_true[known], cue[known])

