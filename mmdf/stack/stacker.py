"""The LightGBM stacker, as a scikit-learn-style estimator.

Why inner folds: early stopping picks the number of boosting rounds by
looking at held-out AUC. If the held-out rows were the fold being predicted,
the stacked OOF estimate would be tuned on its own test rows. So ``fit``
runs LightGBM's own cross-validation (``lightgbm.cv``) on ``inner_folds``
stratified splits of *its own* training rows, early-stopping on their mean
AUC, and refits on all its rows with that many rounds (on 200-300 rows one
held-out split gave noticeably noisier round counts).
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import StratifiedKFold

from mmdf.stack.config import LightGBMParams


class LGBMStacker(ClassifierMixin, BaseEstimator):
    """Binary LightGBM on the stacking features; NaN (missing modality) handled natively."""

    def __init__(self, params: LightGBMParams | None = None, monotone_features: tuple[str, ...] = (),
                 seed: int = 42):
        self.params = params
        self.monotone_features = monotone_features
        self.seed = seed

    def _params(self) -> dict:
        p = self.params or LightGBMParams()
        return {
            "objective": "binary",
            "metric": "auc",
            "num_leaves": p.num_leaves,
            "learning_rate": p.learning_rate,
            "min_data_in_leaf": p.min_child_samples,
            "min_data_in_bin": 1,
            "lambda_l2": p.lambda_l2,
            "feature_fraction": p.feature_fraction,
            "num_threads": p.num_threads,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "feature_pre_filter": False,
            "verbose": -1,
        }

    def fit(self, X: pd.DataFrame, y) -> "LGBMStacker":
        import lightgbm as lgb

        X = _as_frame(X)
        y = np.asarray(y, dtype=int)
        self.feature_names_in_ = np.array(X.columns, dtype=object)
        self.classes_ = np.array([0, 1])
        params = self._params()
        p = self.params or LightGBMParams()
        if self.monotone_features:
            # a higher branch score must never lower the fake probability: a prior that
            # keeps small-data trees from fitting noise in the branch scores
            params["monotone_constraints"] = [int(c in self.monotone_features) for c in X.columns]
            params["monotone_constraints_method"] = "advanced"
        if np.bincount(y, minlength=2).min() >= p.inner_folds:
            splits = StratifiedKFold(p.inner_folds, shuffle=True, random_state=self.seed).split(X, y)
            cv = lgb.cv(params, lgb.Dataset(X, y, params={"verbose": -1}), num_boost_round=p.max_rounds,
                        folds=list(splits), callbacks=[lgb.early_stopping(p.early_stopping_rounds, verbose=False)])
            aucs = cv["valid auc-mean"]  # LightGBM keeps the history up to the best round
            self.best_iteration_ = max(1, len(aucs))
            self.inner_auc_ = float(aucs[-1])
        else:
            # too few clips of a class to hold any out: a short fixed schedule instead
            self.best_iteration_ = min(p.max_rounds, p.early_stopping_rounds)
            self.inner_auc_ = float("nan")
        full = lgb.Dataset(X, y, params={"verbose": -1})
        self.booster_ = lgb.train(params, full, num_boost_round=self.best_iteration_)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        X = _as_frame(X)[list(self.feature_names_in_)]
        p = self.booster_.predict(X, num_iteration=self.best_iteration_)
        return np.column_stack([1 - p, p])

    contribution_unit = "log-odds"

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """SHAP values (LightGBM's ``pred_contrib``) per feature and ``bias``; they sum to the log-odds."""
        X = _as_frame(X)[list(self.feature_names_in_)]
        contrib = self.booster_.predict(X, num_iteration=self.best_iteration_, pred_contrib=True)
        return pd.DataFrame(contrib, index=X.index, columns=[*self.feature_names_in_, "bias"])

    def to_dict(self) -> dict:
        """Plain data (LightGBM's own model text): what :meth:`from_dict` needs to predict."""
        return {"features": list(self.feature_names_in_), "best_iteration": self.best_iteration_,
                "inner_auc": self.inner_auc_, "model": self.booster_.model_to_string()}

    def plain_params(self) -> dict:
        return {"params": asdict(self.params) if self.params else None,
                "monotone_features": list(self.monotone_features), "seed": self.seed}

    @classmethod
    def from_dict(cls, params: dict, state: dict) -> "LGBMStacker":
        import lightgbm as lgb

        lgb_params = LightGBMParams(**params["params"]) if params.get("params") else None
        est = cls(lgb_params, tuple(params.get("monotone_features", ())), params.get("seed", 42))
        est.feature_names_in_ = np.array(state["features"], dtype=object)
        est.classes_ = np.array([0, 1])
        est.best_iteration_ = int(state["best_iteration"])
        est.inner_auc_ = state["inner_auc"]
        est.booster_ = lgb.Booster(model_str=state["model"])
        return est

    def feature_importance(self) -> pd.Series:
        """Total gain per feature, largest first (for the report)."""
        gain = self.booster_.feature_importance(importance_type="gain")
        return pd.Series(gain, index=list(self.feature_names_in_)).sort_values(ascending=False)


def _as_frame(X) -> pd.DataFrame:
    return X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
