"""No leakage: the stacker refuses branch outputs made with other folds (or other clips)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from stack_factory import make_stack_inputs

from mmdf.errors import MmdfError
from mmdf.stack.inputs import load_branches, resolve_folds
from mmdf.stack.run import run_stack


@pytest.fixture
def inputs(tmp_path):
    return make_stack_inputs(tmp_path, n_train=60, n_val=20, n_test=10)


def _rotate_folds(path, n=5):
    df = pd.read_csv(path)
    df["fold"] = (df["fold"] + 1) % n
    df.to_csv(path, index=False)


def test_consistent_folds_are_accepted(inputs):
    cfg, _ = inputs
    folds = resolve_folds(load_branches(cfg), cfg.run_dir / "folds.csv")
    assert len(folds) == 60 and sorted(folds["fold"].unique()) == [0, 1, 2, 3, 4]


def test_branch_trained_on_other_folds_is_refused(inputs):
    cfg, manifest = inputs
    # the visual branch was (re)trained with its own, different folds: its OOF and folds.csv agree
    # with each other but not with the audio branch or the run's folds.csv
    _rotate_folds(cfg.run_dir / "visual" / "oof.csv")
    _rotate_folds(cfg.run_dir / "visual" / "folds.csv")
    with pytest.raises(MmdfError, match="fold assignments differ") as err:
        run_stack(cfg, manifest=manifest)
    assert str(cfg.run_dir / "visual" / "oof.csv") in str(err.value)
    assert str(cfg.run_dir / "folds.csv") in str(err.value)
    assert not (cfg.run_dir / "submission.csv").exists()


def test_single_swapped_clip_is_detected(inputs):
    cfg, manifest = inputs
    path = cfg.run_dir / "audio" / "oof.csv"
    df = pd.read_csv(path)
    i = int(np.flatnonzero(df["fold"] == 0)[0])
    df.loc[i, "fold"] = 1
    df.to_csv(path, index=False)
    with pytest.raises(MmdfError, match=r"for 1 of 60 train clips \(" + df.loc[i, "video_name"]):
        run_stack(cfg, manifest=manifest)


def test_oof_disagreeing_with_its_own_folds_csv_is_refused(inputs):
    cfg, manifest = inputs
    _rotate_folds(cfg.run_dir / "audio" / "folds.csv")
    with pytest.raises(MmdfError, match="audio/folds.csv"):
        run_stack(cfg, manifest=manifest)


def test_branches_from_other_runs_must_share_folds(inputs, tmp_path):
    cfg, manifest = inputs
    # ablation: branches from two runs, no run-level folds.csv: the first branch's folds rule
    (cfg.run_dir / "folds.csv").unlink()
    cfg.stack.branches = {"audio": str(cfg.run_dir / "audio"), "visual": str(cfg.run_dir / "visual")}
    cfg.experiment = "ablation"
    run_stack(cfg, manifest=manifest)
    _rotate_folds(cfg.stack.branches["visual"] + "/oof.csv")
    _rotate_folds(cfg.stack.branches["visual"] + "/folds.csv")
    with pytest.raises(MmdfError, match="fold assignments differ"):
        run_stack(cfg, manifest=manifest, force=True)


def test_other_train_clips_or_stale_test_preds_are_refused(inputs):
    cfg, manifest = inputs
    test_path = cfg.run_dir / "visual" / "test_pred.csv"
    pd.read_csv(test_path).iloc[:-1].to_csv(test_path, index=False)
    with pytest.raises(MmdfError, match="1 clip\\(s\\) missing"):
        run_stack(cfg, manifest=manifest)

    oof_path = cfg.run_dir / "audio" / "oof.csv"
    pd.read_csv(oof_path).iloc[1:].to_csv(oof_path, index=False)
    with pytest.raises(MmdfError, match="cover different train clips"):
        run_stack(cfg, manifest=manifest)


def test_bad_prediction_files_are_refused(inputs):
    cfg, manifest = inputs
    path = cfg.run_dir / "audio" / "val_pred.csv"
    df = pd.read_csv(path)
    df.loc[0, "prob"] = 1.5
    df.to_csv(path, index=False)
    with pytest.raises(MmdfError, match=r"val_pred.csv: 1 prob value\(s\) are not numbers in \[0, 1\]"):
        run_stack(cfg, manifest=manifest)
    df.drop(columns=["status"]).to_csv(path, index=False)
    with pytest.raises(MmdfError, match="missing column"):
        run_stack(cfg, manifest=manifest)
