"""Cross-validation of a stacking method on the branches' folds, scoring and selection."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.base import clone

from mmdf.metrics import TPR_KEY, score_report


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


def score_table(
    oof: dict[str, np.ndarray], y_train: np.ndarray, val: dict[str, np.ndarray], y_val: np.ndarray | None
) -> pd.DataFrame:
    """One row per method: stacked-OOF and val AUC and TPR@FPR=1e-3."""
    rows = []
    for name, p in oof.items():
        o = score(y_train, p)
        v = score(y_val, val.get(name))
        rows.append({
            "method": name,
            "oof_auc": o["auc"], f"oof_{TPR_KEY}": o[TPR_KEY],
            "val_auc": v["auc"], f"val_{TPR_KEY}": v[TPR_KEY],
        })
    return pd.DataFrame(rows)


def choose_method(table: pd.DataFrame) -> str:
    """Best stacked-OOF AUC, TPR@FPR=1e-3 breaking ties, then the earlier (simpler) method."""
    ranked = table.assign(_order=range(len(table))).sort_values(
        ["oof_auc", f"oof_{TPR_KEY}", "_order"], ascending=[False, False, True]
    )
    return str(ranked["method"].iloc[0])
