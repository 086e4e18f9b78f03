"""A classifier for a few hundred clips of statistics: logistic regression, per-group logistic
regressions combined (:mod:`mmdf.stats.groups`), or a small LightGBM.

Which wins depends on the data (a linear score on many weak, correlated
features, a few groups of which only some carry over, or a few thresholds on
strong ones), so :class:`StatsModel` chooses by nested cross-validation on the
training rows: each candidate is tuned on the inner folds of every outer
training part (logistic regression's ``C`` by a grid search, LightGBM's number
of rounds by ``lightgbm.cv`` early stopping) and scored on the outer held-out
part it never saw. In-distribution folds reward fitting the training speakers
and generators as much as the cue, so both choices prefer the simpler model
when the scores are within noise: the strongest regularisation within one
standard error of the best ``C``, and the first candidate (in the order
given, simplest first) within one standard error of the best candidate. The
winner is tuned and refitted on all rows.

A fitted model saves to a JSON-able dict (coefficients, imputer medians,
scaler statistics; LightGBM's model text), never a pickle: a model made by
someone else must be safe to open.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from mmdf.metrics import simplest_within_noise
from mmdf.stats.groups import fit_groups, groups_logit
from mmdf.stats.logistic import fit_logistic, inner_splitter, logistic_logit

FORMAT = "mmdf.stats.StatsModel"
FORMAT_VERSION = 2  # 2: feature groups, per-fold scores
CANDIDATES = ("logistic", "groups", "lightgbm")  # simplest first
SELECTIONS = ("log_loss", "roc_auc")
# Small, strongly regularised trees: a few hundred rows support only a few splits each.
LGB_PARAMS = {
    "objective": "binary", "metric": "binary_logloss", "learning_rate": 0.05, "num_leaves": 4,
    "max_depth": 3, "min_child_samples": 10, "lambda_l2": 10.0, "feature_fraction": 0.5,
    "bagging_fraction": 0.8, "bagging_freq": 1, "max_bin": 63, "feature_pre_filter": False,
    "num_threads": 1, "deterministic": True, "verbose": -1,
}


class StatsModel(ClassifierMixin, BaseEstimator):
    """Logistic regression or LightGBM, whichever nested CV on the training rows scores better.

    ``selection`` is the outer score: ``"log_loss"`` (default) or ``"roc_auc"``.
    On a few hundred clips both candidates often reach an out-of-fold AUC of
    0.99+, a tie decided by one or two pairs; log-loss still tells them apart,
    by how confident each is on every held-out clip. The inner tuning uses the
    same loss (``C`` by ``neg_log_loss``, rounds by ``binary_logloss``).

    ``groups`` (group name -> its column names, for a DataFrame ``X``) is
    what the ``groups`` candidate weighs; without it that candidate is
    skipped. ``folds`` given to :meth:`fit` (one integer fold per row, as in
    ``folds.csv``; -1 = never held out) are the outer folds; otherwise
    ``outer_splits`` stratified folds. After ``fit``: ``choice_`` (the
    winner), ``scores_`` (outer AUC and log-loss per candidate, and the
    log-loss of each outer fold; empty, like ``oof_``, with one candidate), ``oof_``
    (the winner's out-of-fold probabilities, for a stacker), ``folds_``,
    ``state_`` (the refitted winner), ``classes_``, ``feature_names_in_``
    (when fitted on a DataFrame), ``n_features_in_``.
    """

    def __init__(self, candidates=CANDIDATES, selection: str = "log_loss", outer_splits: int = 3,
                 inner_splits: int = 3, c_grid=(0.003, 0.01, 0.03, 0.1, 0.3, 1.0),
                 lgb_params: dict | None = None, max_rounds: int = 1000, early_stopping: int = 50,
                 random_state: int = 42, groups: dict | None = None):
        self.candidates = candidates
        self.selection = selection
        self.outer_splits = outer_splits
        self.inner_splits = inner_splits
        self.c_grid = c_grid
        self.lgb_params = lgb_params
        self.max_rounds = max_rounds
        self.early_stopping = early_stopping
        self.random_state = random_state
        self.groups = groups

    def fit(self, X, y, folds=None) -> StatsModel:
        """Choose the candidate by nested CV, then tune and refit it on all rows."""
        matrix = self._matrix(X, fitting=True)
        target = np.asarray(y).astype(int)
        self.classes_ = np.array([0, 1])
        self.folds_ = outer_folds(target, folds, self.outer_splits, self.random_state)
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, not {self.selection!r}")
        candidates = [c for c in self.candidates if c != "groups" or self.groups]
        if not candidates:
            raise ValueError(f"no candidate to fit: {self.candidates} (the groups candidate needs `groups`)")
        if len(candidates) == 1:  # nothing to choose: no outer folds to pay for
            self.choice_, self.scores_, self.oof_ = candidates[0], {}, None
        else:
            oof = {c: self._out_of_fold(c, matrix, target) for c in candidates}
            self.scores_ = {c: outer_scores(target, p, self.folds_) for c, p in oof.items()}
            self.choice_ = simplest_within_noise({c: sc[f"fold_{self.selection}"] for c, sc in self.scores_.items()},
                                                 higher_is_better=self.selection == "roc_auc")[0]
            self.oof_ = oof[self.choice_]
        self.state_ = fit_candidate(self.choice_, matrix, target, self._settings())
        return self

    def predict_proba(self, X) -> np.ndarray:
        """(n, 2) probabilities of real (0) and fake (1)."""
        p = predict_state(self.state_, self._matrix(X, fitting=False))
        return np.column_stack([1.0 - p, p])

    def _out_of_fold(self, candidate: str, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Outer held-out probabilities; each part is tuned and fitted without its held-out rows."""
        oof = np.full(len(y), np.nan)
        for k in np.unique(self.folds_[self.folds_ >= 0]):
            held = self.folds_ == k
            state = fit_candidate(candidate, X[~held], y[~held], self._settings())
            oof[held] = predict_state(state, X[held])
        return oof

    def _settings(self) -> dict[str, Any]:
        return {
            "groups": self._group_columns(), "inner_splits": self.inner_splits, "c_grid": list(self.c_grid),
            "lgb_params": {**LGB_PARAMS, **(self.lgb_params or {}), "seed": self.random_state},
            "max_rounds": self.max_rounds, "early_stopping": self.early_stopping,
            "random_state": self.random_state,
        }

    def _group_columns(self) -> list:
        """``[name, column indices]`` of each group, in the order of the fitted columns."""
        if not self.groups:
            return []
        names = list(getattr(self, "feature_names_in_", []))
        missing = [c for cols in self.groups.values() for c in cols if c not in names]
        if missing:
            raise ValueError(f"{len(missing)} grouped feature(s) are not columns of X, e.g. {missing[:5]}")
        return [[g, [names.index(c) for c in cols]] for g, cols in self.groups.items()]

    def _matrix(self, X, fitting: bool) -> np.ndarray:
        """Float matrix of X; a DataFrame's columns are matched by name to those seen by fit."""
        if isinstance(X, pd.DataFrame) and fitting:
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        elif isinstance(X, pd.DataFrame) and hasattr(self, "feature_names_in_"):
            X = self._aligned(X)
        matrix = np.asarray(X, dtype=float)
        if fitting:
            self.n_features_in_ = matrix.shape[1]
        elif matrix.shape[1] != self.n_features_in_:
            raise ValueError(f"expected {self.n_features_in_} features, got {matrix.shape[1]}")
        return matrix

    def _aligned(self, X: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise ValueError(f"{len(missing)} feature column(s) missing, e.g. {missing[:5]}")
        return X[list(self.feature_names_in_)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description of the fitted model (no pickle); :meth:`from_dict` restores it."""
        return {
            "format": FORMAT, "version": FORMAT_VERSION,
            "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.get_params().items()},
            "choice": self.choice_, "scores": self.scores_, "n_features": int(self.n_features_in_),
            "feature_names": [str(c) for c in getattr(self, "feature_names_in_", [])] or None,
            "state": self.state_,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StatsModel:
        """The model :meth:`to_dict` described (its out-of-fold predictions are not kept)."""
        if data.get("format") != FORMAT or data.get("version") not in (1, FORMAT_VERSION):  # 1: no groups
            raise ValueError(f"not a {FORMAT} v{FORMAT_VERSION} dict: {data.get('format')} v{data.get('version')}")
        params = dict(data["params"])
        params["candidates"] = tuple(params["candidates"])
        params["c_grid"] = tuple(params["c_grid"])
        params.setdefault("groups", None)
        model = cls(**params)
        model.classes_ = np.array([0, 1])
        model.choice_, model.scores_, model.state_ = data["choice"], data["scores"], data["state"]
        model.n_features_in_ = data["n_features"]
        if data.get("feature_names"):
            model.feature_names_in_ = np.asarray(data["feature_names"], dtype=object)
        return model


def outer_scores(y: np.ndarray, p: np.ndarray, folds: np.ndarray) -> dict[str, Any]:
    """ROC AUC and log-loss of the held-out probabilities, pooled and per outer fold (NaN AUC: one class)."""
    from sklearn.metrics import log_loss

    held = folds >= 0
    out: dict[str, Any] = {"roc_auc": float(roc_auc_score(y[held], p[held])),
                           "log_loss": float(log_loss(y[held], p[held], labels=[0, 1]))}
    parts = [folds == k for k in np.unique(folds[held])]
    out["fold_log_loss"] = [float(log_loss(y[m], p[m], labels=[0, 1])) for m in parts]
    out["fold_roc_auc"] = [float(roc_auc_score(y[m], p[m])) if len(np.unique(y[m])) == 2 else float("nan")
                           for m in parts]
    return out


def outer_folds(y: np.ndarray, folds, n_splits: int, seed: int) -> np.ndarray:
    """One integer fold per row: the given ``folds``, or stratified ones (-1 = never held out)."""
    if folds is not None:
        folds = np.asarray(folds).astype(int)
        if folds.shape != y.shape:
            raise ValueError(f"folds has shape {folds.shape}, y {y.shape}")
        return folds
    out = np.full(len(y), -1)
    splitter = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
    for k, (_, held) in enumerate(splitter.split(np.zeros(len(y)), y)):
        out[held] = k
    return out


def fit_candidate(name: str, X: np.ndarray, y: np.ndarray, settings: dict[str, Any]) -> dict[str, Any]:
    """Tune (inner CV on these rows only) and fit one candidate; its JSON-able state."""
    if name == "logistic":
        return fit_logistic(X, y, settings)
    if name == "lightgbm":
        return fit_lightgbm(X, y, settings)
    if name == "groups":
        return fit_groups(X, y, settings)
    raise ValueError(f"unknown candidate {name!r}; known: {', '.join(CANDIDATES)}")


def fit_lightgbm(X: np.ndarray, y: np.ndarray, settings: dict[str, Any]) -> dict[str, Any]:
    """LightGBM with its number of rounds chosen by ``lightgbm.cv`` early stopping on inner folds."""
    import lightgbm as lgb

    params = settings["lgb_params"]
    folds = list(inner_splitter(y, settings).split(X, y))
    result = lgb.cv(
        params, lgb.Dataset(X, y, params={"verbose": -1}), num_boost_round=settings["max_rounds"],
        folds=folds, callbacks=[lgb.early_stopping(settings["early_stopping"], verbose=False)],
    )
    rounds = len(next(iter(result.values())))
    booster = lgb.train(params, lgb.Dataset(X, y, params={"verbose": -1}), num_boost_round=rounds)
    return {"kind": "lightgbm", "rounds": rounds, "model": booster.model_to_string()}


def predict_state(state: dict[str, Any], X: np.ndarray) -> np.ndarray:
    """Probability of class 1 from a fitted candidate's state."""
    if state["kind"] == "logistic":
        return expit(logistic_logit(state, X))
    if state["kind"] == "groups":
        return expit(groups_logit(state, X))
    import lightgbm as lgb

    return lgb.Booster(model_str=state["model"]).predict(X)
