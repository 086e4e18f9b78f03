"""The methods compared against the LightGBM stacker, all on the same feature frame.

Every method is a scikit-learn-style estimator taking the frame of
:func:`mmdf.stack.features.build_features`, so one cross-validation loop
serves all. How each treats a branch that could not score a clip (NaN):

- ``<branch>_only``: the branch's probability; a missing one gets the train
  fake rate (the prior), learned in ``fit``.
- ``mean``: mean of the branches that scored the clip; none -> the prior.
- ``rank_mean``: each probability becomes its quantile among that branch's
  train OOF probabilities (so the branches' scales are comparable and a
  single new clip can be scored); mean over the branches that scored the
  clip; none -> 0.5, the middle quantile.
- ``logistic``: all features, median-imputed (missing flags are features
  already), standardised, L2 logistic regression.
- ``lightgbm``: :class:`mmdf.stack.stacker.LGBMStacker`, NaN native.

Whatever the method, a clip that *no* branch scored takes the LightGBM
stacker's score (it sees the metadata), see :func:`with_fallback`; the tables
are computed after that substitution, so they measure what is submitted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mmdf.stack.features import branch_columns
from mmdf.stack.stacker import LGBMStacker


class _ScoreRule(ClassifierMixin, BaseEstimator):
    def _start_fit(self, X, y) -> np.ndarray:
        self.classes_ = np.array([0, 1])
        y = np.asarray(y, dtype=int)
        self.prior_ = float(y.mean())
        return y

    def to_dict(self) -> dict:
        """The fitted state as plain data (no pickle): what :meth:`from_dict` needs."""
        return {"prior": self.prior_}

    @classmethod
    def from_dict(cls, params: dict, state: dict):
        est = cls(**params)
        est.classes_ = np.array([0, 1])
        est.prior_ = float(state["prior"])
        return est

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = np.clip(self._score(X), 0.0, 1.0)
        return np.column_stack([1 - p, p])

    contribution_unit = "probability"

    def _shares(self, X: pd.DataFrame, values: dict[str, np.ndarray], base: float) -> pd.DataFrame:
        """Each branch's share of a mean over the branches that scored the clip, around ``base``."""
        out = pd.DataFrame(0.0, index=X.index, columns=[*X.columns, "bias"])
        terms = np.column_stack(list(values.values())) - base
        n = (~np.isnan(terms)).sum(axis=1)
        shares = np.where(np.isnan(terms), 0.0, terms) / np.maximum(n, 1)[:, None]
        for i, b in enumerate(values):
            out[branch_columns(b)[0]] = shares[:, i]
        out["bias"] = base
        return out


class BranchScore(_ScoreRule):
    """One branch alone."""

    def __init__(self, branch: str):
        self.branch = branch

    def fit(self, X: pd.DataFrame, y) -> "BranchScore":
        self._start_fit(X, y)
        return self

    def _score(self, X: pd.DataFrame) -> np.ndarray:
        return X[branch_columns(self.branch)[0]].fillna(self.prior_).to_numpy(dtype=float)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """The score as prior + (branch probability - prior); columns: X's features and ``bias``."""
        return self._shares(X, {self.branch: X[branch_columns(self.branch)[0]].to_numpy(dtype=float)}, self.prior_)


class MeanScore(_ScoreRule):
    """Mean probability of the branches that scored the clip."""

    def __init__(self, branches: tuple[str, ...]):
        self.branches = branches

    def fit(self, X: pd.DataFrame, y) -> "MeanScore":
        self._start_fit(X, y)
        return self

    def _score(self, X: pd.DataFrame) -> np.ndarray:
        probs = X[[branch_columns(b)[0] for b in self.branches]]
        return probs.mean(axis=1, skipna=True).fillna(self.prior_).to_numpy(dtype=float)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """The mean as prior + each scoring branch's share (probability - prior) / branches scored."""
        return self._shares(X, {b: X[branch_columns(b)[0]].to_numpy(dtype=float) for b in self.branches},
                            self.prior_)


class RankMeanScore(_ScoreRule):
    """Mean over branches of the probability's quantile among the branch's train scores."""

    def __init__(self, branches: tuple[str, ...]):
        self.branches = branches

    def fit(self, X: pd.DataFrame, y) -> "RankMeanScore":
        self._start_fit(X, y)
        self.reference_ = {}
        for b in self.branches:
            p = X[branch_columns(b)[0]].dropna().to_numpy(dtype=float)
            self.reference_[b] = np.sort(p)
        return self

    def to_dict(self) -> dict:
        return {"prior": self.prior_, "reference": {b: r.tolist() for b, r in self.reference_.items()}}

    @classmethod
    def from_dict(cls, params: dict, state: dict) -> "RankMeanScore":
        est = super().from_dict(params, state)
        est.reference_ = {b: np.asarray(r, dtype=float) for b, r in state["reference"].items()}
        return est

    def _quantile(self, branch: str, p: np.ndarray) -> np.ndarray:
        ref = self.reference_[branch]
        if len(ref) == 0:
            return np.full(len(p), np.nan)
        # mid-rank: ties count half, as in a rank transform
        lo = np.searchsorted(ref, p, side="left")
        hi = np.searchsorted(ref, p, side="right")
        q = (lo + hi) / (2.0 * len(ref))
        return np.where(np.isnan(p), np.nan, q)

    def _score(self, X: pd.DataFrame) -> np.ndarray:
        qs = np.column_stack([
            self._quantile(b, X[branch_columns(b)[0]].to_numpy(dtype=float)) for b in self.branches
        ])
        with np.errstate(all="ignore"):
            scored = ~np.isnan(qs)
            total = np.where(scored, qs, 0.0).sum(axis=1)
            n = scored.sum(axis=1)
            return np.where(n > 0, total / np.maximum(n, 1), 0.5)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """The rank mean as 0.5 + each scoring branch's share (quantile - 0.5) / branches scored."""
        return self._shares(X, {b: self._quantile(b, X[branch_columns(b)[0]].to_numpy(dtype=float))
                                for b in self.branches}, 0.5)


def with_fallback(p: np.ndarray, fallback: np.ndarray, n_branches_scored: np.ndarray) -> np.ndarray:
    """``p``, except where no branch scored the clip: there the (metadata-aware) fallback's score."""
    return np.where(np.asarray(n_branches_scored) == 0, fallback, p)


class LogisticStacker(ClassifierMixin, BaseEstimator):
    """All features, median-imputed, standardised, L2 logistic regression."""

    def __init__(self, c: float = 1.0, seed: int = 42):
        self.c = c
        self.seed = seed

    def fit(self, X: pd.DataFrame, y) -> "LogisticStacker":
        self.pipeline_ = make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True),
            StandardScaler(),
            LogisticRegression(C=self.c, max_iter=2000, random_state=self.seed),
        ).fit(X, y)
        self.classes_ = self.pipeline_.classes_
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        if not hasattr(self, "pipeline_"):  # loaded from a run folder
            return self._linear_proba(X)
        return self.pipeline_.predict_proba(X)

    def to_dict(self) -> dict:
        imputer, scaler, lr = self.pipeline_.named_steps.values()
        return {"features": list(self.pipeline_.feature_names_in_), "medians": imputer.statistics_.tolist(),
                "mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist(),
                "coef": lr.coef_[0].tolist(), "intercept": float(lr.intercept_[0])}

    @classmethod
    def from_dict(cls, params: dict, state: dict) -> "LogisticStacker":
        """Rebuilt from plain numbers; predicts as the fitted pipeline did (same imputation, scaling, weights)."""
        est = cls(**params)
        est.classes_ = np.array([0, 1])
        est.state_ = {k: np.asarray(v, dtype=float) if k != "features" else list(v) for k, v in state.items()}
        return est

    def _linear_proba(self, X: pd.DataFrame) -> np.ndarray:
        st = self.state_
        x = X[st["features"]].to_numpy(dtype=float)
        x = np.where(np.isnan(x), st["medians"], x)
        z = ((x - st["mean"]) / st["scale"]) @ st["coef"] + st["intercept"]
        p = expit(z)
        return np.column_stack([1 - p, p])

    contribution_unit = "log-odds"

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """The linear terms: coefficient x standardised (imputed) feature per column, ``bias`` the intercept.

        They sum to the log-odds of :meth:`predict_proba`.
        """
        st = self.state_ if not hasattr(self, "pipeline_") else {
            k: v if k == "features" else np.asarray(v, dtype=float) for k, v in self.to_dict().items()}
        x = X[st["features"]].to_numpy(dtype=float)
        x = np.where(np.isnan(x), st["medians"], x)
        out = pd.DataFrame((x - st["mean"]) / st["scale"] * st["coef"], index=X.index, columns=st["features"])
        out["bias"] = float(st["intercept"])
        return out


def make_methods(branches: list[str], stack_cfg, seed: int) -> dict[str, BaseEstimator]:
    """Unfitted estimators of every method, by name, in the report's order."""
    methods: dict[str, BaseEstimator] = {f"{b}_only": BranchScore(b) for b in branches}
    if len(branches) > 1:
        methods["mean"] = MeanScore(tuple(branches))
        methods["rank_mean"] = RankMeanScore(tuple(branches))
    methods["logistic"] = LogisticStacker(stack_cfg.logistic_c, seed)
    monotone = tuple(c for b in branches for c in branch_columns(b)[:2]) \
        if stack_cfg.lightgbm.monotone_branch_scores else ()
    methods["lightgbm"] = LGBMStacker(stack_cfg.lightgbm, monotone, seed)
    return methods
