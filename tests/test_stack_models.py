"""Stacking methods, features and configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from mmdf.run_config import load_config
from mmdf.stack.baselines import MeanScore, RankMeanScore, BranchScore, make_methods
from mmdf.stack.evaluate import choose_method, cross_val_oof
from mmdf.stack.features import build_features
from mmdf.stack.inputs import BranchOutputs
from mmdf.stack.config import LightGBMParams
from mmdf.stack.stacker import LGBMStacker

ROOT = Path(__file__).resolve().parents[1]


def _frame(a, v):
    return pd.DataFrame({"audio_prob": a, "visual_prob": v})


def test_rules_fill_missing_branches_honestly():
    X = _frame([0.9, np.nan, np.nan, 0.2], [0.1, 0.7, np.nan, 0.4])
    y = [1, 0, 1, 0]
    mean = MeanScore(("audio", "visual")).fit(X, y).predict_proba(X)[:, 1]
    np.testing.assert_allclose(mean, [0.5, 0.7, 0.5, 0.3])  # none scored -> prior 0.5
    alone = BranchScore("audio").fit(X, y).predict_proba(X)[:, 1]
    np.testing.assert_allclose(alone, [0.9, 0.5, 0.5, 0.2])
    rank = RankMeanScore(("audio", "visual")).fit(X, y)
    # quantile of each probability among that branch's train scores (mid-rank), then the mean
    # audio train scores (0.2, 0.9): 0.9 -> 3/4; visual (0.1, 0.4, 0.7): 0.1 -> 1/6, 0.7 -> 5/6
    np.testing.assert_allclose(rank.predict_proba(X)[:, 1], [(3 / 4 + 1 / 6) / 2, 5 / 6, 0.5, (1 / 4 + 3 / 6) / 2])


def _synthetic(n=300, seed=0, nan_frac=0.2):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = 1 / (1 + np.exp(-(2 * y - 1 + rng.normal(0, 1, n))))
    a[rng.random(n) < nan_frac] = np.nan
    X = pd.DataFrame({"audio_prob": a, "noise": rng.random(n)})
    return X, y


def test_lgbm_stacker_is_deterministic_and_handles_nan():
    X, y = _synthetic()
    p1 = LGBMStacker(seed=3).fit(X, y).predict_proba(X)
    p2 = LGBMStacker(seed=3).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(p1, p2)
    assert p1.shape == (len(y), 2) and np.isfinite(p1).all()
    m = LGBMStacker().fit(X, y)
    assert 1 <= m.best_iteration_ <= LightGBMParams().max_rounds
    assert m.feature_importance().index[0] == "audio_prob"
    # scikit-learn conventions: clone keeps params and drops fitted state
    assert not hasattr(clone(m), "booster_") and clone(m).get_params() == m.get_params()


def test_monotone_constraint_is_applied():
    X, y = _synthetic(nan_frac=0.0)
    m = LGBMStacker(monotone_features=("audio_prob",)).fit(X, y)
    grid = pd.DataFrame({"audio_prob": np.linspace(0, 1, 50), "noise": 0.5})
    assert (np.diff(m.predict_proba(grid)[:, 1]) >= -1e-12).all()


def test_cross_val_oof_predicts_each_fold_with_a_model_that_did_not_see_it():
    X, y = _synthetic(n=100)
    fold = np.arange(100) % 5

    class Spy(BranchScore):
        seen: list = []

        def fit(self, X, y):
            Spy.seen.append(set(X.index))
            return super().fit(X, y)

    oof = cross_val_oof(Spy("audio"), X, y, fold)
    assert np.isfinite(oof).all()
    for k, seen in enumerate(Spy.seen):
        assert seen.isdisjoint(set(np.flatnonzero(fold == k)))


def test_choose_method_prefers_the_simpler_method_within_the_folds_noise():
    table = pd.DataFrame({"method": ["audio_only", "mean", "logistic", "lightgbm"]})
    noisy = {"audio_only": [0.99, 0.99, 0.99], "mean": [0.91, 0.96, 0.94], "logistic": [0.91, 0.96, 0.94],
             "lightgbm": [0.92, 0.97, 0.95]}
    chosen, why = choose_method(table, noisy)
    assert chosen == "audio_only"  # beats every combination by far more than their spread
    noisy["audio_only"] = [0.5, 0.5, 0.5]
    chosen, why = choose_method(table, noisy)
    assert chosen == "mean" and "simplest method within one standard error" in why and "lightgbm" in why
    clear = {**noisy, "lightgbm": [0.99, 0.99, 0.99]}
    assert choose_method(table, clear)[0] == "lightgbm"


def test_features_flag_missing_and_use_manifest():
    preds = {"test": pd.DataFrame({"video_name": ["a.mp4", "b.mp4"], "prob": [0.8, np.nan], "status": ["ok", "no_face"]})}
    audio = BranchOutputs("audio", Path("."), {"test": preds["test"].assign(prob=[np.nan, np.nan])}, None)
    visual = BranchOutputs("visual", Path("."), preds, None)
    manifest = pd.DataFrame({
        "split": "test", "video_name": ["b.mp4", "a.mp4"], "frames_with_face": [0, 16],
        "face_conf_mean": [np.nan, 0.99], "duration": [3.0, 5.0], "has_audio": [False, True],
        "audio_status": ["no_audio", "corrupt"], "visual_status": ["no_face", "ok"],
    })
    X = build_features([audio, visual], "test", ["a.mp4", "b.mp4"], manifest)
    assert X.loc["a.mp4", "visual_logit"] == pytest.approx(np.log(4))
    assert X.loc["b.mp4", "visual_missing"] == 1 and np.isnan(X.loc["b.mp4", "visual_prob"])
    assert X["n_branches_scored"].tolist() == [1, 0]
    assert X.loc["a.mp4", "frames_with_face"] == 16 and X.loc["b.mp4", "has_audio"] == 0
    assert X.loc["a.mp4", "audio_ok"] == 0 and X.loc["a.mp4", "visual_ok"] == 1


@pytest.mark.parametrize("path", ["configs/stack.yaml", "configs/demo/stack.yaml"])
def test_stack_configs_load(path):
    cfg = load_config(ROOT / path)
    methods = make_methods(["audio", "visual"], cfg.stack, cfg.seed)
    assert cfg.stack.method == "auto" and "lightgbm" in methods
    assert cfg.stack.pred_column == "y_pred"


def test_bad_stack_config_is_refused():
    from mmdf.errors import ConfigError

    with pytest.raises(ConfigError, match="stack.lightgbm.num_leafs"):
        load_config(None, ["stack.lightgbm.num_leafs=3"])
    with pytest.raises(ConfigError, match="inner_folds must be at least 2"):
        load_config(None, ["stack.lightgbm.inner_folds=1"])
