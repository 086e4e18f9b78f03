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



def simplest_within_noise(fold_scores: dict, higher_is_better: bool = True) -> tuple:
    """The first entry whose mean fold score is within one standard error of the best mean.

    ``fold_scores`` maps each candidate, simplest first, to its scores on the
    same held-out folds (NaN folds are left out). In-distribution folds reward
    fitting the training speakers and generators as much as the cue, so a
    more complex candidate must beat a simpler one by more than the folds'
    noise to be chosen. Returns ``(choice, best, margin)``: the chosen
    candidate, the one with the best mean, and the standard error used.
    """
    if not fold_scores:
        raise ValueError("no candidates to choose from")
    sign = 1.0 if higher_is_better else -1.0
    means = {c: sign * float(np.nanmean(v)) if np.isfinite(v).any() else -np.inf
             for c, v in ((c, np.asarray(v, dtype=float)) for c, v in fold_scores.items())}
    best = max(means, key=means.get)  # ties: the earlier
    scores = np.asarray(fold_scores[best], dtype=float)
    scores = scores[np.isfinite(scores)]
    margin = float(scores.std(ddof=1) / np.sqrt(len(scores))) if len(scores) > 1 else 0.0
    choice = next(c for c in fold_scores if means[c] >= means[best] - margin)
    return choice, best, margin


N_BOOTSTRAP = 1000  # replicates; 200 above LARGE_SAMPLE clips, where the interval is narrow anyway
LARGE_SAMPLE = 50_000
INTERVAL = 0.95


def bootstrap_auc(y_true, y_score, n_boot: int = N_BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """ROC AUCs of ``n_boot`` bootstrap replicates (n clips drawn with replacement, as counts per clip).

    One sort of the scores, then O(n) per replicate (ties count half, as in
    :func:`roc_auc`) instead of a new ROC curve each time. A replicate that
    draws no clip of a class is NaN.
    """
    y_true, y_score = _check(y_true, y_score)
    pos_mask = y_true.astype(bool)
    _, inv = np.unique(y_score, return_inverse=True)
    n_unique = int(inv.max()) + 1
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    for b in range(n_boot):
        w = np.bincount(rng.integers(0, len(y_true), len(y_true)), minlength=len(y_true)).astype(float)
        pos = np.bincount(inv[pos_mask], w[pos_mask], minlength=n_unique)
        neg = np.bincount(inv[~pos_mask], w[~pos_mask], minlength=n_unique)
        below = np.cumsum(neg) - neg  # negative weight strictly below each distinct score
        den = pos.sum() * neg.sum()
        out[b] = (pos * (below + 0.5 * neg)).sum() / den if den else np.nan
    return out


def _replicates(n: int) -> int:
    return N_BOOTSTRAP if n <= LARGE_SAMPLE else 200


def _interval(replicates: np.ndarray) -> list[float]:
    tail = 100 * (1 - INTERVAL) / 2
    return [float(v) for v in np.nanpercentile(replicates, [tail, 100 - tail])]


def auc_interval(y_true, y_score, seed: int = 0) -> list[float]:
    """The 95% bootstrap interval of one ROC AUC (see :func:`bootstrap_auc`)."""
    return _interval(bootstrap_auc(y_true, y_score, _replicates(len(y_true)), seed))


def shift_report(oof: tuple, val: tuple, n_boot: int | None = None, seed: int = 0) -> dict:
    """OOF and val AUC side by side, each with a bootstrap interval, and val minus OOF with its own.

    ``oof`` and ``val`` are ``(labels, scores)``. The two samples are drawn
    independently; ``shifted`` is true when the whole interval of the
    difference lies below 0: val falls below OOF by more than resampling
    the clips explains, i.e. what was learnt does not carry over to val.
    """
    if n_boot is None:
        n_boot = _replicates(max(len(oof[0]), len(val[0])))
    a, b = bootstrap_auc(*oof, n_boot, seed), bootstrap_auc(*val, n_boot, seed + 1)
    oof_auc, val_auc = roc_auc(*oof), roc_auc(*val)
    diff = _interval(b - a)
    return {"oof_auc": oof_auc, "oof_interval": _interval(a), "val_auc": val_auc, "val_interval": _interval(b),
            "val_minus_oof": val_auc - oof_auc, "difference_interval": diff, "shifted": bool(diff[1] < 0),
            "interval": INTERVAL, "n_bootstrap": n_boot}


def shift_sentence(name: str, shift: dict) -> str:
    """The shift of one model in words, for reports and logs."""
    lo, hi = shift["difference_interval"]
    figures = (f"OOF AUC {shift['oof_auc']:.3f}, val {shift['val_auc']:.3f}: val - OOF "
               f"{shift['val_minus_oof']:+.3f} ({100 * shift['interval']:.0f}% interval {lo:+.3f} to {hi:+.3f})")
    if shift["shifted"]:
        return (f"{name}: val falls below OOF by more than the interval ({figures}): what it learnt on the "
                "train folds does not carry over to val (other speakers, identities or generators?)")
    return f"{name}: no shift beyond the interval ({figures})"
