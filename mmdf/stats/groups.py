"""One logistic regression per feature group, combined with weights that the training folds decide.

Which group of statistics carries over to unseen speakers and generators
differs between data sets (on one real set the long-term spectrum, on another
the spectrum's fine structure), and dropping a group because one set did not
need it is a guess. Here every group gets its own standardised logistic
regression; their out-of-fold logits on the training rows are combined by a
logistic regression with non-negative weights, so a group that does not help
on held-out rows gets weight 0 instead of fitting noise, and no group can
count against the fake class. The state is plain JSON, like the other
candidates of :class:`mmdf.stats.model.StatsModel`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from mmdf.stats.logistic import fit_logistic, inner_splitter, logistic_logit

COMBINER_L2 = 1e-3  # a touch of ridge keeps the weights finite where one group separates the rows


def fit_groups(X: np.ndarray, y: np.ndarray, settings: dict[str, Any]) -> dict[str, Any]:
    """Per group: a logistic regression on its columns; the combiner on their inner-fold out-of-fold logits.

    ``settings["groups"]`` is a list of ``[name, column indices]``; the other
    settings are those of :func:`mmdf.stats.logistic.fit_logistic`.
    """
    groups = settings["groups"]
    if not groups:
        raise ValueError("the groups candidate needs feature groups (settings['groups'] is empty)")
    states, oof = [], np.zeros((len(y), len(groups)))
    splits = list(inner_splitter(y, settings).split(X, y))  # the same inner folds for every group
    for g, (name, cols) in enumerate(groups):
        part = X[:, cols]
        states.append({"name": name, "columns": list(cols), "model": fit_logistic(part, y, settings)})
        fixed = {**settings, "c_grid": [states[-1]["model"]["C"]]}  # held-out logits at the chosen C
        for fit_rows, held in splits:
            oof[held, g] = logistic_logit(fit_logistic(part[fit_rows], y[fit_rows], fixed), part[held])
    weights, intercept = nonnegative_logistic(oof, y)
    return {"kind": "groups", "groups": states, "weights": weights.tolist(), "intercept": intercept}


def groups_logit(state: dict[str, Any], X: np.ndarray) -> np.ndarray:
    """The combined logit of a fitted groups state."""
    z = np.column_stack([logistic_logit(g["model"], X[:, g["columns"]]) for g in state["groups"]])
    return z @ np.asarray(state["weights"]) + state["intercept"]


def nonnegative_logistic(Z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Weights >= 0 and a free intercept minimising the mean log-loss of ``Z @ w + b`` (L-BFGS-B)."""
    k = Z.shape[1]
    sign = 2.0 * y - 1.0

    def loss(theta):
        margin = sign * (Z @ theta[:k] + theta[k])
        p_wrong = expit(-margin)
        grad_m = -sign * p_wrong / len(y)
        value = -log_expit(margin).mean() + COMBINER_L2 * theta[:k] @ theta[:k]
        grad = np.append(Z.T @ grad_m + 2 * COMBINER_L2 * theta[:k], grad_m.sum())
        return value, grad

    start = np.append(np.full(k, 1.0 / k), 0.0)
    res = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=[(0, None)] * k + [(None, None)])
    return np.maximum(res.x[:k], 0.0), float(res.x[k])
