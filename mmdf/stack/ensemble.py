"""The fold models of a stacking method, averaged: what scores val, test and `mmdf predict`.

Why not a model refitted on all train OOF: the calibration and the operating
thresholds are learnt on the stacked OOF scores, and those come from the fold
models. A refit on every row is a different model (LightGBM refitted on 3/2
as many rows stops at another round and is more confident), so a calibration
learnt on the fold models' scores would be applied to scores it has not seen
(on the demo it made the val log-loss worse). Averaging the fold models'
probabilities scores new clips with the very models the calibration knows,
as the branches score val and test with their fold models.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin


class FoldEnsemble(ClassifierMixin, BaseEstimator):
    """Mean probability of already fitted fold models of one method."""

    def __init__(self, members: list):
        self.members = members
        self.classes_ = np.array([0, 1])

    def member_probas(self, X: pd.DataFrame) -> np.ndarray:
        """(K, n): each fold model's probability of fake (what its own calibrator maps)."""
        return np.stack([m.predict_proba(X)[:, 1] for m in self.members])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self.member_probas(X).mean(axis=0)
        return np.column_stack([1 - p, p])

    @property
    def contribution_unit(self) -> str:
        return self.members[0].contribution_unit

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """The members' terms averaged (for log-odds terms: the terms of the mean log-odds, which
        ranks the parts as the mean probability would, not its exact decomposition)."""
        return sum(m.contributions(X) for m in self.members) / len(self.members)

    def feature_importance(self) -> pd.Series:
        """The members' total gain per feature, averaged, largest first (LightGBM members only)."""
        gains = pd.concat([m.feature_importance() for m in self.members], axis=1).mean(axis=1)
        return gains.sort_values(ascending=False)
