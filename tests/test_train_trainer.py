"""The k-fold trainer end to end on tiny synthetic caches (CPU, seconds)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import mmdf.train.loop as loop
from mmdf.errors import MmdfError
from mmdf.run_config import load_config
from mmdf.train.branches import get_branch
from mmdf.train.kfold import train_branch
from mmdf.train.trained import TrainedBranch
from train_factory import make_manifest, tiny_config

OUTPUTS = ["config.yaml", "folds.csv", "oof.csv", "val_pred.csv", "test_pred.csv", "metrics.json"]
FOLD_OUTPUTS = ["best.pt", "last.pt", "summary.csv", "predictions.csv"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Both branches trained once on the same synthetic manifest."""
    tmp = tmp_path_factory.mktemp("train")
    manifest = make_manifest(tmp)
    # The demo dataset's own manifest names each fake's kind (contract 1).
    (tmp / "data").mkdir()
    kinds = manifest[["split", "video_name", "target"]].copy()
    kinds["kind"] = ["real" if t == 0 else ("fake_audio" if i % 4 == 1 else "fake_visual")
                     for i, t in enumerate(kinds["target"].fillna(0))]
    kinds.to_csv(tmp / "data" / "manifest.csv", index=False)
    cfg = tiny_config(tmp)
    out = {b: train_branch(cfg, b, manifest=manifest) for b in ("audio", "visual")}
    return tmp, cfg, manifest, out


def test_writes_every_output(trained):
    _, cfg, _, out = trained
    for branch, d in out.items():
        assert d == cfg.run_dir / branch
        for f in OUTPUTS:
            assert (d / f).is_file(), f
        for k in range(2):
            for f in FOLD_OUTPUTS:
                assert (d / f"fold_{k}" / f).is_file(), f"fold_{k}/{f}"
        assert list((d / "tb").glob("fold_0/events.*"))
        metrics = json.loads((d / "metrics.json").read_text())
        assert set(metrics["folds"]) == {"0", "1"}
        assert {"auc", "tpr@fpr=0.001"} <= set(metrics["oof"]) and metrics["val"]["n"] == 8
        assert set(metrics["oof_by_kind"]) == {"fake_audio", "fake_visual"}
        by_kind = metrics["oof_by_kind"]["fake_audio"]
        assert by_kind["n_fake"] + by_kind["n_real"] == by_kind["n"] and by_kind["n_real"] == metrics["oof"]["n_real"]
        summary = pd.read_csv(d / "fold_0" / "summary.csv")
        assert len(summary) == 2 and {"held_auc", "train_samples_per_s"} <= set(summary.columns)


def test_folds_stratified_saved_and_shared(trained):
    _, cfg, manifest, out = trained
    folds = pd.read_csv(cfg.run_dir / "folds.csv")
    train = manifest[manifest["split"] == "train"]
    assert sorted(folds["video_name"]) == sorted(train["video_name"])
    assert (folds.groupby("fold")["target"].mean() == 0.5).all()  # 6 real, 6 fake per fold
    oof_a = pd.read_csv(out["audio"] / "oof.csv")
    oof_v = pd.read_csv(out["visual"] / "oof.csv")
    assert oof_a[["video_name", "fold"]].equals(oof_v[["video_name", "fold"]])
    merged = oof_a.merge(folds, on="video_name", suffixes=("", "_file"))
    assert (merged["fold"] == merged["fold_file"]).all()


def test_missing_modality_is_nan_with_status(trained):
    _, _, _, out = trained
    oof_a = pd.read_csv(out["audio"] / "oof.csv").set_index("video_name")
    oof_v = pd.read_csv(out["visual"] / "oof.csv").set_index("video_name")
    for name in ("train_000.mp4", "train_001.mp4"):  # no audio
        assert np.isnan(oof_a.loc[name, "prob"]) and oof_a.loc[name, "status"] == "no_audio"
        assert not np.isnan(oof_v.loc[name, "prob"])
    for name in ("train_002.mp4", "train_003.mp4"):  # no face
        assert np.isnan(oof_v.loc[name, "prob"]) and oof_v.loc[name, "status"] == "no_face"
        assert not np.isnan(oof_a.loc[name, "prob"])
    assert oof_a["prob"].notna().sum() == 22 and (oof_a["prob"] != 0.5).all()
    metrics = json.loads((out["audio"] / "metrics.json").read_text())
    assert metrics["oof_missing"] == {"no_audio": 2} and metrics["oof"]["n"] == 22
    test = pd.read_csv(out["visual"] / "test_pred.csv")
    assert list(test.columns) == ["video_name", "prob", "status"] and test["prob"].notna().all()


def test_val_and_test_are_fold_means(trained):
    _, _, _, out = trained
    d = out["audio"]
    per_fold = pd.concat(pd.read_csv(d / f"fold_{k}" / "predictions.csv") for k in range(2))
    mean = per_fold[per_fold["split"] == "val"].groupby("video_name")["prob"].mean()
    val = pd.read_csv(d / "val_pred.csv").set_index("video_name")
    assert np.allclose(val["prob"], mean.reindex(val.index))
    assert per_fold.groupby("video_name").size()[mean.index].eq(2).all()


def test_rerun_is_noop_and_predict_branch_matches(trained):
    _, cfg, manifest, out = trained
    before = (out["audio"] / "oof.csv").stat().st_mtime_ns
    train_branch(cfg, "audio", manifest=manifest)
    assert (out["audio"] / "oof.csv").stat().st_mtime_ns == before
    rows = manifest[manifest["split"] == "test"]
    pred = TrainedBranch(get_branch("audio"), out["audio"], load_config(out["audio"] / "config.yaml")).score(rows)
    saved = pd.read_csv(out["audio"] / "test_pred.csv")
    assert np.allclose(pred["prob"], saved["prob"], atol=1e-6)


def test_fold_subset_then_rest(tmp_path):
    manifest = make_manifest(tmp_path, n_train=12, n_val=4, n_test=0, no_audio=0, no_face=0)
    cfg = tiny_config(tmp_path, extra=["train.epochs=1"])
    out = train_branch(cfg, "audio", folds=[1], manifest=manifest)
    assert (out / "fold_1" / "predictions.csv").is_file() and not (out / "fold_0").exists()
    assert not (out / "oof.csv").exists()  # written only once every fold is trained
    train_branch(cfg, "audio", folds=[0], manifest=manifest)
    oof = pd.read_csv(out / "oof.csv")
    assert oof["prob"].notna().all() and len(oof) == 12
    assert pd.read_csv(out / "test_pred.csv").empty
    with pytest.raises(MmdfError, match="out of range"):
        train_branch(cfg, "audio", folds=[2], manifest=manifest, force=True)


def test_best_checkpoint_is_chosen_by_auc_with_patience(tmp_path, monkeypatch):
    """Held-out AUC peaks at epoch 1 while the loss is lowest at epoch 3: AUC must win."""
    scripted = iter([(0.6, 0.0, 0.5), (0.9, 0.1, 0.6), (0.7, 0.0, 0.2), (0.8, 0.0, 0.1)] * 2)
    monkeypatch.setattr(loop, "held_scores", lambda y, p: next(scripted))
    manifest = make_manifest(tmp_path, n_train=12, n_val=0, n_test=0, no_audio=0, no_face=0)
    cfg = tiny_config(tmp_path, extra=["train.epochs=6", "train.patience=2"])
    out = train_branch(cfg, "audio", manifest=manifest)
    import torch
    best = torch.load(out / "fold_0" / "best.pt", weights_only=True)
    assert best["epoch"] == 1 and best["held_auc"] == 0.9
    summary = pd.read_csv(out / "fold_0" / "summary.csv")
    assert list(summary["epoch"]) == [0, 1, 2, 3]  # stopped: 2 epochs without a better AUC
    assert list(summary["best"]) == [True, True, False, False]
    assert json.loads((out / "metrics.json").read_text())["folds"]["0"]["best_epoch"] == 1


def test_resume_after_kill_mid_epoch(tmp_path, monkeypatch):
    manifest = make_manifest(tmp_path, n_train=16, n_val=4, n_test=2, no_audio=0, no_face=0)
    extra = ["train.epochs=3", "train.batch_size=4"]
    ref = train_branch(tiny_config(tmp_path, "ref", extra), "visual", manifest=manifest)

    real_step = loop.train_step
    calls = {"n": 0}

    def dying_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6 + 3:  # fold 0: 6 steps per epoch (8 clips x 3 faces / 4) -> mid epoch 1
            raise KeyboardInterrupt("killed")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", dying_step)
    cfg = tiny_config(tmp_path, "resumed", extra)
    with pytest.raises(KeyboardInterrupt):
        train_branch(cfg, "visual", manifest=manifest)
    out = cfg.run_dir / "visual"
    import torch
    assert torch.load(out / "fold_0" / "last.pt", weights_only=True)["state"]["epoch"] == 0
    assert not (out / "oof.csv").exists()
    monkeypatch.setattr(loop, "train_step", real_step)
    train_branch(cfg, "visual", manifest=manifest)
    a = pd.read_csv(ref / "oof.csv")
    b = pd.read_csv(out / "oof.csv")
    assert a["video_name"].equals(b["video_name"])
    assert np.allclose(a["prob"], b["prob"], atol=1e-5)
    assert np.allclose(pd.read_csv(ref / "val_pred.csv")["prob"], pd.read_csv(out / "val_pred.csv")["prob"], atol=1e-5)
