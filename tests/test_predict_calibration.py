"""Calibration, operating thresholds, contributions and the model card that `mmdf stack` leaves for `mmdf predict`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import log_loss
from stack_factory import make_stack_inputs

from mmdf.errors import MmdfError
from mmdf.predict.explain import branch_contributions, reasons
from mmdf.stack.baselines import make_methods
from mmdf.stack.calibration import (PROB_CLIP, apply_calibration, apply_calibrator, choose_calibration,
                                    fit_calibrator, load_calibration, operating_points, pick_threshold,
                                    threshold_at_fpr)
from mmdf.stack.features import logit
from mmdf.stack.run import run_stack


def overconfident(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and a score that ranks well but is far too sure of itself (log-odds x 4)."""
    z = rng.normal(0, 1.5, n)
    y = (rng.random(n) < expit(z)).astype(int)
    return y, expit(4 * z)


def test_calibration_lowers_log_loss_on_held_out_clips_and_thresholds_hold():
    rng = np.random.default_rng(0)
    y, score = overconfident(rng, 600)
    fold = rng.integers(0, 5, len(y))
    cal = choose_calibration(score, y, fold)
    assert min(cal["oof_log_loss_cv"].values()) < cal["oof_log_loss_raw"] and len(cal["members"]) == 5
    y_val, val = overconfident(rng, 4000)
    calibrated = apply_calibration(cal, np.tile(val, (5, 1)))  # five fold models that score alike
    assert log_loss(y_val, calibrated) < log_loss(y_val, np.clip(val, PROB_CLIP, 1 - PROB_CLIP))
    points = operating_points(y, score, [0.001, 0.01], y_val, val)
    at_1pct = points[1]
    assert at_1pct["oof_fpr"] <= 0.01 and at_1pct["val_fpr"] <= 0.02 and at_1pct["oof_tpr"] > 0
    assert points[0]["threshold"] >= at_1pct["threshold"]


def test_stored_calibrators_predict_as_scikit_learn_does_and_are_never_certain():
    rng = np.random.default_rng(1)
    y, score = overconfident(rng, 300)
    new = np.concatenate([rng.random(50), [0.0, 1.0, np.nan]])
    stored = json.loads(json.dumps(fit_calibrator("isotonic", score, y)))  # plain numbers only
    assert min(stored["y"]) >= 1 / (len(y) + 2) and max(stored["y"]) <= 1 - 1 / (len(y) + 2)  # Laplace-smoothed
    assert np.all(np.diff(stored["y"]) >= 0)
    iso = IsotonicRegression(out_of_bounds="clip").fit(stored["x"], stored["y"])  # the stored steps as sklearn has them
    got = apply_calibrator(stored, new)
    np.testing.assert_allclose(got[:-1], np.clip(iso.predict(new[:-1]), PROB_CLIP, 1 - PROB_CLIP))
    assert np.isnan(got[-1])
    platt = fit_calibrator("platt", score, y)
    assert set(platt) == {"kind", "coef", "intercept"} and platt["coef"] > 0
    np.testing.assert_allclose(apply_calibrator(platt, new[:-1]),
                               np.clip(expit(platt["coef"] * logit(new[:-1]) + platt["intercept"]),
                                       PROB_CLIP, 1 - PROB_CLIP))


def test_threshold_above_every_real_clip_when_the_top_score_is_real():
    y = np.array([0, 1, 1, 0, 1])
    score = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
    t = threshold_at_fpr(y, score, 0.01)
    assert 0.9 < t < 0.9 + 1e-9  # nothing seen in training is called fake there
    assert threshold_at_fpr(y, score, 0.5) == pytest.approx(0.7)  # one real of two: the ROC point at 0.7


@pytest.fixture(scope="module")
def stacked(tmp_path_factory):
    root = tmp_path_factory.mktemp("calib")
    cfg, manifest = make_stack_inputs(root)
    return cfg, run_stack(cfg, manifest=manifest)


def test_stack_stores_calibration_thresholds_report_and_model_card(stacked):
    cfg, stack_dir = stacked
    info = load_calibration(stack_dir)
    assert info["calibration"]["kind"] in ("isotonic", "platt")
    assert [r["target_fpr"] for r in info["thresholds"]] == [0.001, 0.01] and info["default_fpr"] == 0.01
    assert info["val_log_loss"]["calibrated"] < info["val_log_loss"]["raw"]
    assert pick_threshold(info)["target_fpr"] == 0.01 and pick_threshold(info, 0.001)["target_fpr"] == 0.001
    with pytest.raises(MmdfError, match="no threshold stored for FPR 0.2"):
        pick_threshold(info, 0.2)
    assert (stack_dir / "reliability.png").stat().st_size > 0
    report = (cfg.run_dir / "report.md").read_text()
    section = report[report.index("## Calibration and operating thresholds"):report.index("## Configs used")]
    assert "stack/reliability.png" in section and "| target FPR |" in section.replace("   ", " ")
    card = (cfg.run_dir / "model_card.md").read_text()
    for heading in ("## Data", "## Branches", "## Metrics", "## Calibration and thresholds", "## Known limits"):
        assert heading in card
    assert "| corrupt  |" in card and "test 3 such clips" in card  # counts by status; what it cannot score


def test_contributions_add_up_to_each_method_score(stacked):
    cfg, stack_dir = stacked
    feats = pd.read_csv(stack_dir / "features.csv").set_index("video_name")
    y = pd.read_csv(stack_dir / "oof.csv")["target"].to_numpy()
    X = feats[feats["split"] == "train"].drop(columns="split")
    new = feats[feats["split"] == "val"].drop(columns="split")
    for name, est in make_methods(["audio", "visual"], cfg.stack, cfg.seed).items():
        est.fit(X, y)
        total = est.contributions(new).sum(axis=1).to_numpy()
        p = est.predict_proba(new)[:, 1]
        expected = logit(p) if est.contribution_unit == "log-odds" else p
        np.testing.assert_allclose(total, expected, atol=1e-6, err_msg=name)


def test_loaded_stacker_explains_as_fitted_and_reason_names_the_pusher(stacked):
    from mmdf.stack.saved import load_stacker

    cfg, stack_dir = stacked
    stacker = load_stacker(stack_dir)
    feats = pd.read_csv(stack_dir / "features.csv").set_index("video_name")
    X = feats[feats["split"] == "val"].drop(columns="split").iloc[:5]
    parts = branch_contributions(stacker["fallback"], X, ["audio", "visual"])
    assert list(parts.columns) == ["audio_contrib", "visual_contrib", "metadata_contrib"]
    row = pd.DataFrame([{"score": 0.9, "status": "ok", "decision": "fake", "audio_prob": 0.97, "visual_prob": 0.12,
                         "audio_contrib": 2.1, "visual_contrib": -0.4, "metadata_contrib": 0.1}])
    assert reasons(row, ["audio", "visual"], "log-odds") == \
        ["audio: 0.97, visual: 0.12; audio pushed most (+2.10 log-odds)"]


def test_an_already_calibrated_score_is_left_as_it_is():
    rng = np.random.default_rng(2)
    z = rng.normal(0, 2, 600)
    y = (rng.random(len(z)) < expit(z)).astype(int)  # the score is the true probability
    cal = choose_calibration(expit(z), y, rng.integers(0, 3, len(y)))
    assert cal["kind"] == "none" and cal["oof_log_loss_cv"]["none"] == pytest.approx(cal["oof_log_loss_raw"])
    got = apply_calibration(cal, [[0.2, 0.7, np.nan], [0.4, 0.7, np.nan], [0.3, 0.7, np.nan]])
    np.testing.assert_allclose(got[:2], [0.3, 0.7])  # the fold models' mean, as it is
    assert np.isnan(got[2])


def test_each_fold_model_gets_its_own_calibrator():
    """Fold models with their own offsets: calibrating each on its own fold beats one calibrator on them
    all, which learns a blur of the offsets that the fold models' average does not have."""
    rng = np.random.default_rng(3)
    offsets = np.array([-1.5, 0.0, 1.0])

    def scored(n):
        z = rng.normal(0, 1.5, n)
        y = (rng.random(n) < expit(z)).astype(int)
        return y, np.stack([expit(2 * z + o) for o in offsets])  # (K, n): each fold model's score

    y, members = scored(900)
    fold = np.repeat([0, 1, 2], 300)
    oof = members[fold, np.arange(len(y))]  # each clip scored by the fold model that did not see it
    cal = choose_calibration(oof, y, fold, seed=0)
    assert cal["kind"] != "none" and len(cal["members"]) == 3
    if cal["kind"] == "platt":  # each fold's intercept undoes its own offset
        assert np.all(np.diff([m["intercept"] for m in cal["members"]]) < 0)
    y_val, val_members = scored(3000)
    raw = np.clip(val_members.mean(axis=0), PROB_CLIP, 1 - PROB_CLIP)
    pooled = apply_calibrator(fit_calibrator(cal["kind"], oof, y), val_members.mean(axis=0))
    per_model = apply_calibration(cal, val_members)
    assert log_loss(y_val, per_model) < min(log_loss(y_val, raw), log_loss(y_val, pooled))
    with pytest.raises(MmdfError, match="3 fold calibrators but the stacker 2 fold models"):
        apply_calibration(cal, val_members[:2])


def test_val_is_scored_by_the_fold_models_the_calibration_was_learnt_on(stacked):
    """Not by a refit: the stored stacker is the fold models, and its val scores are their mean."""
    from mmdf.stack.ensemble import FoldEnsemble
    from mmdf.stack.saved import load_stacker

    cfg, stack_dir = stacked
    stacker = load_stacker(stack_dir)
    est = stacker["estimator"]
    assert isinstance(est, FoldEnsemble) and len(est.members) == cfg.folds.n_splits
    feats = pd.read_csv(stack_dir / "features.csv").set_index("video_name")
    X = feats[feats["split"] == "val"].drop(columns="split")[stacker["features"]]
    members = np.mean([m.predict_proba(X)[:, 1] for m in est.members], axis=0)
    np.testing.assert_allclose(est.predict_proba(X)[:, 1], members)
    scored = X["n_branches_scored"].to_numpy() > 0
    val = pd.read_csv(stack_dir / "val_all.csv").set_index("video_name").loc[X.index, stacker["method"]]
    np.testing.assert_allclose(val.to_numpy()[scored], members[scored], rtol=1e-6)
    terms = est.contributions(X).sum(axis=1).to_numpy()
    per_member = [m.predict_proba(X)[:, 1] for m in est.members]
    expected = np.mean([logit(p) if est.contribution_unit == "log-odds" else p for p in per_member], axis=0)
    np.testing.assert_allclose(terms, expected, atol=1e-6)
