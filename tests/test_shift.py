"""Measuring the shift from OOF to val: bootstrap intervals, the warning in words, and where it shows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from stack_factory import make_stack_inputs

from mmdf.data.config import FoldConfig
from mmdf.data.folds import describe_folds
from mmdf.metrics import bootstrap_auc, shift_report, shift_sentence, simplest_within_noise
from mmdf.stack.run import run_stack


def scores(n: int, separation: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, np.round(y * separation + rng.normal(0, 1, n), 1)  # rounded: ties, counted half


def test_each_bootstrap_replicate_is_the_auc_of_a_resample():
    y, p = scores(200, 1.0, 0)
    reps = bootstrap_auc(y, p, n_boot=5, seed=3)
    rng = np.random.default_rng(3)
    for rep in reps:
        idx = rng.integers(0, len(y), len(y))  # the draws bootstrap_auc makes, as indices
        assert rep == pytest.approx(roc_auc_score(y[idx], p[idx]), abs=1e-12)


def test_shift_is_flagged_only_beyond_the_interval():
    same = shift_report(scores(300, 1.5, 0), scores(150, 1.5, 1))
    assert not same["shifted"] and same["difference_interval"][0] < 0 < same["difference_interval"][1]
    assert same["oof_interval"][0] < same["oof_auc"] < same["oof_interval"][1]
    shifted = shift_report(scores(300, 2.5, 0), scores(150, 0.2, 1))
    assert shifted["shifted"] and shifted["difference_interval"][1] < 0
    assert "falls below OOF by more than the interval" in shift_sentence("audio", shifted)
    assert "no shift beyond the interval" in shift_sentence("audio", same)


def test_simplest_within_noise():
    assert simplest_within_noise({"a": [0.90, 0.94], "b": [0.91, 0.95]})[0] == "a"
    assert simplest_within_noise({"a": [0.80, 0.81], "b": [0.91, 0.92]})[0] == "b"
    assert simplest_within_noise({"a": [0.5, 0.52], "b": [0.31, 0.2]}, higher_is_better=False)[0] == "b"
    assert simplest_within_noise({"a": [0.3, 0.32], "b": [0.31, 0.2]}, higher_is_better=False)[0] == "a"


def test_folds_say_whether_they_hold_groups_out():
    assert "not grouped" in describe_folds(FoldConfig(n_splits=3))
    grouped = describe_folds(FoldConfig(n_splits=3, groups_file="speakers.csv", group_column="speaker"))
    assert "grouped by `speaker` of `speakers.csv`" in grouped


def shift_val(cfg) -> None:
    """Every branch's val scores replaced by noise: what the branches learnt does not carry over."""
    rng = np.random.default_rng(7)
    for branch in ("audio", "visual"):
        path = cfg.run_dir / branch / "val_pred.csv"
        val = pd.read_csv(path)
        val["prob"] = np.where(val["prob"].isna(), np.nan, rng.random(len(val)))
        val.to_csv(path, index=False)


@pytest.mark.parametrize("shifted", [False, True])
def test_a_stack_run_reports_the_shift(tmp_path, shifted):
    cfg, manifest = make_stack_inputs(tmp_path, n_train=160, n_val=100, n_test=20)
    if shifted:
        shift_val(cfg)
    stack_dir = run_stack(cfg, manifest=manifest)
    metrics = json.loads((stack_dir / "metrics.json").read_text())
    report = (cfg.run_dir / "report.md").read_text()
    assert "## Shift: OOF against val" in report and "not grouped" in report
    rows = {m["method"]: m for m in metrics["methods"]}
    assert all("difference_low" in r and r["difference_low"] <= r["val_minus_oof"] for r in rows.values())
    assert "Every branch's OOF AUC interval lies above chance" in report
    if shifted:
        assert metrics["chosen"] in metrics["shifted"]
        assert f"**Warning:** {metrics['chosen']}: val falls below OOF" in report
    else:
        assert metrics["shifted"] == [] and "No method's val falls below its OOF" in report


def test_a_branch_at_chance_is_named_in_the_report(tmp_path):
    cfg, manifest = make_stack_inputs(tmp_path, n_train=160, n_val=100, n_test=20)
    rng = np.random.default_rng(3)
    for split in ("oof", "val_pred", "test_pred"):  # the visual branch sees nothing
        path = cfg.run_dir / "visual" / f"{split}.csv"
        frame = pd.read_csv(path)
        frame["prob"] = np.where(frame["prob"].isna(), np.nan, rng.random(len(frame)))
        frame.to_csv(path, index=False)
    run_stack(cfg, manifest=manifest)
    report = (cfg.run_dir / "report.md").read_text()
    assert "**Did not earn its place:** visual: OOF AUC" in report and "audio: OOF AUC" not in report
