"""The statistics model: it learns, round-trips through JSON, and its nested CV never sees held-out rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import mmdf.stats.model as model_mod
from mmdf.stats.model import StatsModel


def data(n: int = 120, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    X = rng.normal(size=(n, 6))
    X[:, 0] += 1.5 * y  # a linear cue
    X[:, 1] = np.where(y == 1, rng.normal(3, 1, n), rng.normal(0, 1, n)) * (rng.random(n) < 0.7)
    X[rng.random(X.shape) < 0.05] = np.nan  # missing values, as degenerate clips give
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(6)]), y


@pytest.mark.parametrize("candidates", [("logistic",), ("lightgbm",), ("logistic", "lightgbm")])
def test_learns_and_round_trips_through_json(candidates):
    X, y = data()
    model = StatsModel(candidates=candidates, max_rounds=200).fit(X, y)
    assert model.choice_ in candidates and set(model.scores_) == set(candidates)
    assert model.scores_[model.choice_]["roc_auc"] > 0.8 and model.oof_.shape == y.shape
    restored = StatsModel.from_dict(json.loads(json.dumps(model.to_dict())))
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))
    shuffled = X[X.columns[::-1]]  # columns are matched by name
    np.testing.assert_array_equal(restored.predict_proba(shuffled), model.predict_proba(X))
    assert restored.get_params() == model.get_params()


def test_logistic_state_matches_the_sklearn_pipeline():
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = data()
    model = StatsModel(candidates=("logistic",)).fit(X, y)
    pipe = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                         LogisticRegression(C=model.state_["C"], max_iter=5000)).fit(X.to_numpy(), y)
    np.testing.assert_allclose(model.predict_proba(X), pipe.predict_proba(X.to_numpy()), atol=1e-6)


def test_nested_cv_never_sees_the_outer_held_out_rows(monkeypatch):
    X, y = data(90)
    X.insert(0, "row", np.arange(len(y), dtype=float))  # rows carry their id through every fit
    folds = np.arange(len(y)) % 3
    seen = []
    real_fit = model_mod.fit_candidate

    def spy(name, Xs, ys, settings):
        seen.append((name, frozenset(Xs[:, 0].astype(int))))
        return real_fit(name, Xs, ys, settings)

    monkeypatch.setattr(model_mod, "fit_candidate", spy)
    model = StatsModel(max_rounds=100).fit(X, y, folds=folds)
    every = frozenset(range(len(y)))
    complements = {k: every - frozenset(np.flatnonzero(folds == k)) for k in range(3)}
    assert seen[-1] == (model.choice_, every)  # the winner refitted on all rows
    outer = seen[:-1]
    for name in ("logistic", "lightgbm"):
        parts = [rows for n, rows in outer if n == name]
        # one fit per outer fold, on exactly the rows outside it: tuning included, it never saw them
        assert sorted(parts, key=sorted) == sorted(complements.values(), key=sorted)


def test_lightgbm_rounds_come_from_inner_cv_only(monkeypatch):
    import lightgbm as lgb

    X, y = data(90)
    sizes = []
    real_cv = lgb.cv

    def spy(params, train_set, **kw):
        sizes.append(len(train_set.get_label()))
        return real_cv(params, train_set, **kw)

    monkeypatch.setattr(lgb, "cv", spy)
    StatsModel(candidates=("lightgbm",), max_rounds=100).fit(X, y, folds=np.arange(90) % 3)
    assert sizes == [60, 60, 60, 90]  # each outer part alone, then all rows for the refit


def test_bad_inputs_fail_clearly():
    X, y = data()
    model = StatsModel(candidates=("logistic",)).fit(X, y)
    with pytest.raises(ValueError, match="missing"):
        model.predict_proba(X.drop(columns="f2"))
    with pytest.raises(ValueError, match="selection"):
        StatsModel(selection="accuracy").fit(X, y)
    with pytest.raises(ValueError, match="not a"):
        StatsModel.from_dict({"format": "pickle"})
