"""Cross-validation of a stacking method on the branches' folds, scoring and selection."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.base import clone

from mmdf.metrics import TPR_KEY, auc_interval, score_report, shift_report, simplest_within_noise


def cross_val_fit(estimator, X: pd.DataFrame, y: np.ndarray, fold: np.ndarray) -> tuple[np.ndarray, list]:
    """Stacked out-of-fold probabilities, each fold predicted by a clone fitted on the others; and the clones.

    ``fold`` must be the branches' own fold of every row, so that no row's
    branch prediction or stacker prediction ever came from a model that saw it.
    """
    oof = np.full(len(y), np.nan)
    models = []
    for k in np.unique(fold):
        held = fold == k
        models.append(clone(estimator).fit(X.loc[~held], y[~held]))
        oof[held] = models[-1].predict_proba(X.loc[held])[:, 1]
    return oof, models


def cross_val_oof(estimator, X: pd.DataFrame, y: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """The stacked out-of-fold probabilities of :func:`cross_val_fit` alone."""
    return cross_val_fit(estimator, X, y, fold)[0]


def score(y: np.ndarray | None, p: np.ndarray | None) -> dict:
    """AUC and TPR@FPR=1e-3, or NaN where there are no labels (or one class only)."""
    if y is None or p is None or len(np.unique(y)) < 2:
        return {"auc": math.nan, TPR_KEY: math.nan}
    r = score_report(y, p)
    return {"auc": r["auc"], TPR_KEY: r[TPR_KEY]}


def fold_aucs(oof: dict[str, np.ndarray], y: np.ndarray, fold: np.ndarray) -> dict[str, list[float]]:
    """Stacked-OOF AUC of every method on each fold's held-out clips (NaN where a fold has one class)."""
    out = {}
    for name, p in oof.items():
        out[name] = [score(y[fold == k], p[fold == k])["auc"] for k in np.unique(fold)]
    return out


def score_table(oof: dict[str, np.ndarray], y_train: np.ndarray, val: dict[str, np.ndarray], y_val: np.ndarray | None,
                seed: int = 0) -> pd.DataFrame:
    """One row per method: stacked-OOF and val AUC and TPR@FPR=1e-3, and the shift between them.

    ``oof_low``/``oof_high``: the OOF AUC's bootstrap interval. Where val has
    labels: val minus OOF AUC with its bootstrap interval and ``shifted`` (see
    :func:`mmdf.metrics.shift_report`).
    """
    rows = []
    for name, p in oof.items():
        o = score(y_train, p)
        v = score(y_val, val.get(name))
        row = {"method": name, "oof_auc": o["auc"], f"oof_{TPR_KEY}": o[TPR_KEY],
               "val_auc": v["auc"], f"val_{TPR_KEY}": v[TPR_KEY]}
        if math.isnan(v["auc"]):
            row["oof_low"], row["oof_high"] = auc_interval(y_train, p, seed)
        else:
            shift = shift_report((y_train, p), (y_val, val[name]), seed=seed)
            row.update(oof_low=shift["oof_interval"][0], oof_high=shift["oof_interval"][1],
                       val_minus_oof=shift["val_minus_oof"], difference_low=shift["difference_interval"][0],
                       difference_high=shift["difference_interval"][1], shifted=shift["shifted"])
        rows.append(row)
    return pd.DataFrame(rows)


# The order in which methods count as simpler: a later one must beat every earlier one by more than
# the folds' noise. One branch alone comes last: it drops every other modality.
SIMPLICITY = ("mean", "rank_mean", "logistic", "lightgbm")


def simplicity_order(methods) -> list[str]:
    """``methods`` from the simplest: :data:`SIMPLICITY`, then the rest in their given order."""
    methods = list(methods)
    return [m for m in SIMPLICITY if m in methods] + [m for m in methods if m not in SIMPLICITY]


def choose_method(table: pd.DataFrame, folds: dict[str, list[float]]) -> tuple[str, str]:
    """The simplest method whose mean fold AUC is within one standard error of the best; and why, in words.

    Stacked-OOF AUC measures only in-distribution skill: a method that wins
    it by less than the fold-to-fold noise has not shown it will transfer,
    and the simpler one transfers better (on a real speech-vs-TTS set the
    best-OOF method was the one that transferred worst).
    """
    order = simplicity_order(table["method"])
    chosen, best, margin = simplest_within_noise({m: folds[m] for m in order})
    mean = {m: float(np.nanmean(folds[m])) for m in order}
    if chosen == best:
        why = (f"best mean stacked-OOF AUC over the folds ({mean[best]:.4f}); no simpler method within one "
               f"standard error ({margin:.4f}) of it")
    else:
        why = (f"the simplest method within one standard error ({margin:.4f}) of the best mean stacked-OOF "
               f"AUC over the folds ({best}: {mean[best]:.4f}; {chosen}: {mean[chosen]:.4f}); simpler methods "
               f"are tried first: {', '.join(order)}")
    return chosen, why
