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
    assert model.choice_ in candidates
    if len(candidates) > 1:
        assert set(model.scores_) == set(candidates)
        assert model.scores_[model.choice_]["roc_auc"] > 0.8 and model.oof_.shape == y.shape
    else:  # nothing to choose: no outer cross-validation
        assert model.scores_ == {} and model.oof_ is None
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
    model = StatsModel(candidates=("logistic", "lightgbm"), max_rounds=100).fit(X, y, folds=np.arange(90) % 3)
    refit = [90] if model.choice_ == "lightgbm" else []
    assert sizes == [60, 60, 60, *refit]  # each outer part alone, then all rows for the refit
    sizes.clear()
    StatsModel(candidates=("lightgbm",), max_rounds=100).fit(X, y, folds=np.arange(90) % 3)
    assert sizes == [90]  # one candidate: nothing to choose, no outer parts


def test_bad_inputs_fail_clearly():
    X, y = data()
    model = StatsModel(candidates=("logistic",)).fit(X, y)
    with pytest.raises(ValueError, match="missing"):
        model.predict_proba(X.drop(columns="f2"))
    with pytest.raises(ValueError, match="selection"):
        StatsModel(selection="accuracy").fit(X, y)
    with pytest.raises(ValueError, match="not a"):
        StatsModel.from_dict({"format": "pickle"})


def test_groups_weigh_the_groups_that_carry_the_label():
    """The groups candidate: one logistic model per group, a noise group weighed (near) zero, JSON round trip."""
    X, y = data(160)
    rng = np.random.default_rng(1)
    for i in range(4):
        X[f"noise{i}"] = rng.normal(size=len(y))
    groups = {"cues": ["f0", "f1"], "rest": ["f2", "f3", "f4", "f5"], "noise": [f"noise{i}" for i in range(4)]}
    model = StatsModel(candidates=("groups",), groups=groups).fit(X, y)
    assert model.choice_ == "groups" and model.oof_ is None  # one candidate: no outer folds to pay for
    weights = dict(zip([g["name"] for g in model.state_["groups"]], model.state_["weights"]))
    assert min(weights.values()) >= 0 and weights["cues"] > 0.5 and weights["noise"] < 0.2 * weights["cues"]
    restored = StatsModel.from_dict(json.loads(json.dumps(model.to_dict())))
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))
    assert restored.predict_proba(X)[y == 1, 1].mean() > restored.predict_proba(X)[y == 0, 1].mean() + 0.3


def test_the_simpler_candidate_wins_within_the_outer_folds_noise(monkeypatch):
    X, y = data(120)
    model = StatsModel(candidates=("logistic", "lightgbm"), max_rounds=100).fit(X, y)
    loss = {c: np.mean(s["fold_log_loss"]) for c, s in model.scores_.items()}
    se = {c: np.std(s["fold_log_loss"], ddof=1) / np.sqrt(3) for c, s in model.scores_.items()}
    best = min(loss, key=loss.get)
    expected = "logistic" if loss["logistic"] <= loss[best] + se[best] else "lightgbm"
    assert model.choice_ == expected


def test_logistic_c_is_never_weaker_than_the_best_inner_score():
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = data(120)
    grid = (0.001, 0.01, 0.1, 1.0, 10.0)
    model = StatsModel(candidates=("logistic",), c_grid=grid).fit(X, y)
    pipe = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(max_iter=5000))
    plain = GridSearchCV(pipe, {"logisticregression__C": grid}, scoring="neg_log_loss",
                         cv=model_mod.inner_splitter(y, model._settings())).fit(X.to_numpy(), y)
    # the best inner score's C, or a stronger regularisation within one standard error of it
    assert model.state_["C"] <= plain.best_params_["logisticregression__C"]
