"""End-to-end stacking on synthetic branch outputs (tests/stack_factory.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from stack_factory import make_stack_inputs

from mmdf.cli import main
from mmdf.data.labels import read_labels
from mmdf.errors import MmdfError
from mmdf.stack.report import metrics_table
from mmdf.stack.run import run_stack
from mmdf.stack.saved import load_stacker, predict_with_stacker

STACK_YAML = str(Path(__file__).resolve().parents[1] / "configs" / "stack.yaml")


@pytest.fixture(scope="module")
def stacked(tmp_path_factory):
    root = tmp_path_factory.mktemp("stack")
    cfg, manifest = make_stack_inputs(root)
    stack_dir = run_stack(cfg, manifest=manifest)
    return cfg, manifest, stack_dir


def test_stack_beats_each_branch_on_val(stacked):
    cfg, _, stack_dir = stacked
    metrics = json.loads((stack_dir / "metrics.json").read_text())
    table = {m["method"]: m for m in metrics["methods"]}
    assert set(table) == {"audio_only", "visual_only", "mean", "rank_mean", "logistic", "lightgbm"}
    best_branch = max(table["audio_only"]["val_auc"], table["visual_only"]["val_auc"])
    # each branch alone misses one kind of fake; the stack must catch both
    assert table["lightgbm"]["val_auc"] > best_branch + 0.05
    chosen = metrics["chosen"]
    assert table[chosen]["val_auc"] > best_branch
    # chosen on the stacked OOF, never on val: the best, or a simpler method within the folds' noise of it
    assert table[chosen]["oof_auc"] >= max(m["oof_auc"] for m in table.values()) - 0.05
    assert "stacked-OOF AUC over the folds" in metrics["selection"]


def test_submission_follows_test_list_and_is_complete(stacked):
    cfg, manifest, stack_dir = stacked
    sub = pd.read_csv(cfg.run_dir / "submission.csv")
    names = read_labels(cfg.data.split_paths("test")[0], require_target=False)["video_name"].tolist()
    assert list(sub.columns) == ["video_name", "y_pred"]
    assert sub["video_name"].tolist() == names
    assert sub["y_pred"].between(0, 1).all() and sub["y_pred"].notna().all()
    # the 3 corrupt test clips were scored by no branch, yet have a score, and are counted
    test_pred = pd.read_csv(stack_dir / "test_pred.csv")
    assert (test_pred["n_branches_scored"] == 0).sum() == 3
    metrics = json.loads((stack_dir / "metrics.json").read_text())
    assert metrics["unscored_by_any_branch"]["test"] == 3
    np.testing.assert_allclose(sub["y_pred"], test_pred["prob"], atol=1e-7)


def test_report_and_artifacts(stacked):
    cfg, _, stack_dir = stacked
    metrics = json.loads((stack_dir / "metrics.json").read_text())
    text = metrics_table(metrics)
    rows = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")]
    assert f"{metrics['chosen']} *" in rows and len(rows) == 7  # header + 6 methods, the chosen one marked
    report = (cfg.run_dir / "report.md").read_text()
    assert "stack/roc.png" in report and "stack/hist.png" in report
    assert re.search(r"^\| corrupt +\|", report, re.M)  # counts by manifest status
    assert "Submission method" in report and "test: 3" in report
    for name in ("roc.png", "hist.png", "oof.csv", "val_pred.csv", "lightgbm_fold0.txt", "stacker.json", "config.yaml"):
        assert (stack_dir / name).stat().st_size > 0, name
    val = pd.read_csv(stack_dir / "val_pred.csv")
    assert list(val.columns) == ["video_name", "target", "prob"] and val["prob"].notna().all()
    oof = pd.read_csv(stack_dir / "oof.csv")
    assert oof.drop(columns=["video_name"]).notna().all().all()


def test_saved_stacker_reproduces_test_predictions(stacked):
    cfg, manifest, stack_dir = stacked
    stacker = load_stacker(stack_dir)
    branch_preds = {b: pd.read_csv(cfg.run_dir / b / "test_pred.csv") for b in ("audio", "visual")}
    rows = manifest[manifest["split"] == "test"]
    got = predict_with_stacker(stacker, branch_preds, rows)
    want = pd.read_csv(stack_dir / "test_pred.csv")
    assert got["video_name"].tolist() == want["video_name"].tolist()
    np.testing.assert_allclose(got["prob"], want["prob"], atol=1e-9)


def test_rerun_is_noop_unless_forced(stacked):
    cfg, manifest, stack_dir = stacked
    before = (stack_dir / "metrics.json").stat().st_mtime_ns
    run_stack(cfg, manifest=manifest)
    assert (stack_dir / "metrics.json").stat().st_mtime_ns == before


def test_pred_column_method_and_no_test_list(tmp_path):
    cfg, manifest = make_stack_inputs(tmp_path, n_train=60, n_val=30, n_test=10,
                                      overrides=("stack.pred_column=score", "stack.method=logistic"))
    run_stack(cfg, manifest=manifest)
    sub = pd.read_csv(cfg.run_dir / "submission.csv")
    assert list(sub.columns) == ["video_name", "score"]
    assert json.loads((cfg.run_dir / "stack" / "metrics.json").read_text())["chosen"] == "logistic"

    cfg.stack.method = "best_guess"
    with pytest.raises(MmdfError, match="stack.method='best_guess' is not one of: auto, audio_only"):
        run_stack(cfg, manifest=manifest, force=True)
    cfg.stack.method = "auto"

    cfg.data.test_list = None
    (cfg.run_dir / "submission.csv").unlink()
    run_stack(cfg, manifest=manifest, force=True)
    assert not (cfg.run_dir / "submission.csv").exists()
    assert "not written" in (cfg.run_dir / "report.md").read_text()


def test_noise_branches_give_no_stacked_signal(tmp_path):
    """Early stopping never sees the predicted fold: noise in, chance-level OOF AUC out."""
    cfg, manifest = make_stack_inputs(tmp_path, n_train=300, n_val=30, n_test=10, informative=False,
                                      missing_frac=0.0, n_unscored_test=0)
    stack_dir = run_stack(cfg, manifest=manifest)
    table = {m["method"]: m for m in json.loads((stack_dir / "metrics.json").read_text())["methods"]}
    assert 0.35 < table["lightgbm"]["oof_auc"] < 0.65
    assert 0.35 < table["logistic"]["oof_auc"] < 0.65


def test_cli_runs_stack_and_reports_user_errors(tmp_path, capsys):
    cfg, manifest = make_stack_inputs(tmp_path, n_train=40, n_val=20, n_test=8)
    overrides = [f"runs_dir={cfg.runs_dir}", f"experiment={cfg.experiment}", f"data.root={cfg.data.root}",
                 "folds.n_splits=5", "stack.use_metadata=false", "stack.lightgbm.min_child_samples=3"]
    assert main(["stack", "--config", STACK_YAML, *overrides]) == 0
    assert "submission:" in capsys.readouterr().out
    assert (cfg.run_dir / "submission.csv").is_file()

    (cfg.run_dir / "visual" / "oof.csv").unlink()
    assert main(["stack", "--config", STACK_YAML, *overrides, "--force"]) == 2
    err = capsys.readouterr().err
    assert "visual" in err and "oof.csv" in err and "mmdf train visual" in err
