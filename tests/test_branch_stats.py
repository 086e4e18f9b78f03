"""The statistics branches on tiny synthetic caches: the same k-fold contract as the CNN branches."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mmdf.data.folds import check_folds
from mmdf.run_config import load_config
from mmdf.train.branches import get_branch
from mmdf.train.kfold import train_branch
from train_factory import make_manifest, tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stats")
    manifest = make_manifest(tmp, n_train=30, n_val=8, n_test=6)
    cfg = tiny_config(tmp, extra=[f"data.cache_dir={tmp / 'prep'}"])
    out = {name: train_branch(cfg, name, manifest=manifest) for name in ("audio_stats", "visual_stats")}
    return cfg, manifest, out


@pytest.mark.parametrize("name,status", [("audio_stats", "no_audio"), ("visual_stats", "no_face")])
def test_every_train_clip_out_of_fold_once_and_nan_with_status(trained, name, status):
    cfg, manifest, out = trained
    oof = pd.read_csv(out[name] / "oof.csv")
    train = manifest[manifest["split"] == "train"]
    assert sorted(oof["video_name"]) == sorted(train["video_name"])
    check_folds(oof)  # every clip in exactly one fold
    per_fold = pd.concat(pd.read_csv(out[name] / f"fold_{k}" / "predictions.csv") for k in range(2))
    held = per_fold[per_fold["split"] == "train"]
    assert not held["video_name"].duplicated().any()  # predicted by one fold model only: its own held-out fold
    merged = held.merge(oof, on="video_name", suffixes=("_pred", "_oof"))
    assert (merged["fold_pred"] == merged["fold_oof"]).all()
    missing = oof["status"] == status
    assert missing.sum() == 2 and oof.loc[missing, "prob"].isna().all()
    assert oof.loc[~missing, "prob"].between(0, 1).all()
    metrics = json.loads((out[name] / "metrics.json").read_text())
    assert metrics["oof"]["auc"] > 0.9  # the synthetic fakes carry a bright band / square
    shift = metrics["shift"]  # val has labels: OOF and val side by side, with intervals
    assert shift["oof_auc"] == pytest.approx(metrics["oof"]["auc"]) and shift["val_auc"] == metrics["val"]["auc"]
    lo, hi = shift["difference_interval"]
    assert lo <= hi and isinstance(shift["shifted"], bool) and shift["shifted"] == (hi < 0)


def test_fold_models_are_json_and_score_as_the_run_did(trained):
    cfg, manifest, out = trained
    model = json.loads((out["audio_stats"] / "fold_0" / "model.json").read_text())
    assert model["choice"] == "groups"  # audio_stats weighs its feature groups (train.audio_stats.candidates)
    assert {g["name"] for g in model["state"]["groups"]} >= {"level", "fine", "envelope"}
    rows = manifest[manifest["split"] == "test"]
    branch_dir = out["audio_stats"]
    got = get_branch("audio_stats").trained(branch_dir, load_config(branch_dir / "config.yaml")).score(rows)
    saved = pd.read_csv(out["audio_stats"] / "test_pred.csv")
    np.testing.assert_allclose(got["prob"], saved["prob"], atol=1e-9)
