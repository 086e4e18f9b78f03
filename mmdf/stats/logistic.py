"""The statistics models' logistic regression: median-imputed, standardised, L2, ``C`` tuned on inner folds.

Its state is plain JSON (imputer medians, scaler statistics, coefficients), so
a fitted model is safe to open and is scored without scikit-learn's objects.
The chosen ``C`` is the strongest regularisation within one standard error of
the best inner score: in-distribution folds reward fitting the training
speakers and generators as much as the cue.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold

from mmdf.metrics import simplest_within_noise


def inner_splitter(y: np.ndarray, settings: dict[str, Any]) -> StratifiedKFold:
    """The stratified inner folds that tune a model on these rows (as many as the rarer class allows)."""
    n = int(min(settings["inner_splits"], np.bincount(y, minlength=2).min()))
    return StratifiedKFold(max(n, 2), shuffle=True, random_state=settings["random_state"])


def fit_logistic(X: np.ndarray, y: np.ndarray, settings: dict[str, Any]) -> dict[str, Any]:
    """Median-imputed, standardised L2 logistic regression, ``C`` chosen by inner-CV log-loss.

    The chosen ``C`` is the smallest (strongest regularisation) whose mean
    inner log-loss is within one standard error of the best one's.
    """
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
        LogisticRegression(max_iter=5000),
    )
    if len(settings["c_grid"]) == 1:  # nothing to tune
        fitted, c = pipe.set_params(logisticregression__C=settings["c_grid"][0]).fit(X, y), settings["c_grid"][0]
    else:
        search = GridSearchCV(pipe, {"logisticregression__C": settings["c_grid"]}, scoring="neg_log_loss",
                              cv=inner_splitter(y, settings), n_jobs=1, refit=_smallest_c_within_noise).fit(X, y)
        fitted, c = search.best_estimator_, search.best_params_["logisticregression__C"]
    imputer, scaler, lr = fitted.steps
    return {
        "kind": "logistic", "C": float(c),
        "medians": np.nan_to_num(imputer[1].statistics_, nan=0.0).tolist(),
        "means": scaler[1].mean_.tolist(), "scales": scaler[1].scale_.tolist(),
        "coef": lr[1].coef_[0].tolist(), "intercept": float(lr[1].intercept_[0]),
    }


def _smallest_c_within_noise(cv_results: dict) -> int:
    """GridSearchCV ``refit`` rule: the index of the smallest ``C`` within one standard error of the best."""
    folds = sorted(k for k in cv_results if k.startswith("split") and k.endswith("_test_score"))
    scores = np.array([cv_results[k] for k in folds]).T  # (candidates, folds), higher is better
    cs = np.asarray(cv_results["param_logisticregression__C"], dtype=float)
    order = np.argsort(cs, kind="stable")
    pick = simplest_within_noise({int(i): scores[i] for i in order}, higher_is_better=True)[0]
    return int(pick)


def logistic_logit(state: dict[str, Any], X: np.ndarray) -> np.ndarray:
    """Logit of a fitted logistic state (median-imputed, standardised, linear)."""
    filled = np.where(np.isnan(X), np.asarray(state["medians"]), X)
    z = (filled - np.asarray(state["means"])) / np.asarray(state["scales"])
    return z @ np.asarray(state["coef"]) + state["intercept"]
