"""Trust in run folders: opening one executes no code, a moved run uses its own branches,
a stale stack redoes itself, a train-only dataset stacks, and same-named clips of two
splits keep their own scores."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mmdf.errors import MmdfError
from mmdf.predict.predict import predict_clips
from mmdf.stack.run import run_stack
from mmdf.train.kfold import train_branch
from test_stack_predict import _fake_prepare
from train_factory import make_manifest, tiny_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny trained and stacked run (both branches, 2 folds)."""
    tmp = tmp_path_factory.mktemp("trust")
    manifest = make_manifest(tmp)
    cfg = tiny_config(tmp, extra=["stack.lightgbm.min_child_samples=2", "train.epochs=1"])
    for branch in ("audio", "visual"):
        train_branch(cfg, branch, manifest=manifest)
    run_stack(cfg, manifest=manifest)
    return tmp, cfg, manifest


class Payload:
    """Unpickling this runs ``touch <flag>``: what a crafted file from a stranger would do."""

    def __init__(self, flag: Path):
        self.flag = str(flag)

    def __reduce__(self):
        return os.system, (f"touch {self.flag}",)


def _copy_run(cfg, dest: Path) -> Path:
    shutil.copytree(cfg.run_dir, dest, symlinks=True)
    return dest


def test_crafted_stacker_and_checkpoint_run_no_code(run, tmp_path, monkeypatch):
    _, cfg, manifest = run
    theirs = _copy_run(cfg, tmp_path / "their_run")
    flag = tmp_path / "code_ran"
    import pickle

    (theirs / "stack" / "stacker.json").unlink()
    (theirs / "stack" / "stacker.pkl").write_bytes(pickle.dumps(Payload(flag)))
    monkeypatch.setattr("mmdf.prepare.runner.prepare_clips", _fake_prepare(manifest))
    clip = tmp_path / manifest.loc[manifest["split"] == "test", "video_name"].iloc[0]
    with pytest.raises(MmdfError, match="pickled the stacker, which is not loaded"):
        predict_clips(theirs, [clip])
    assert not flag.exists()

    shutil.rmtree(theirs)
    theirs = _copy_run(cfg, tmp_path / "their_run")
    ckpt = theirs / "audio" / "fold_0" / "best.pt"
    torch.save({"model": Payload(flag)}, ckpt)
    with pytest.raises(MmdfError, match="refused to load.*could run code"):
        predict_clips(theirs, [clip])
    assert not flag.exists()


def test_moved_run_scores_with_its_own_branches_from_any_directory(run, tmp_path, monkeypatch):
    _, cfg, manifest = run
    monkeypatch.setattr("mmdf.prepare.runner.prepare_clips", _fake_prepare(manifest))
    names = manifest.loc[manifest["split"] == "test", "video_name"].tolist()
    clips = [tmp_path / n for n in names]
    for c in clips:
        c.write_bytes(b"x")  # present on disk; their features come from the stand-in prepare
    before = predict_clips(cfg.run_dir, clips)
    moved = _copy_run(cfg, tmp_path / "elsewhere" / "moved")
    # a decoy with the original run's layout under the new working directory must not be read
    decoy = tmp_path / "cwd" / cfg.run_dir.name
    shutil.copytree(cfg.run_dir, decoy)
    for f in decoy.glob("*/fold_*/best.pt"):
        f.unlink()
    monkeypatch.chdir(tmp_path / "cwd")
    after = predict_clips(moved.resolve(), clips)
    assert before["prob"].notna().all()
    np.testing.assert_allclose(after["prob"], before["prob"], atol=1e-9)
    stored = json.loads((moved / "stack" / "stacker.json").read_text())["branches"]
    assert stored == {"audio": "audio", "visual": "visual"}  # relative to the run folder


def test_branch_retrained_after_stacking_restacks(run, tmp_path):
    tmp, cfg, manifest = run
    cfg2 = tiny_config(tmp, "restack", ["stack.lightgbm.min_child_samples=2", "train.epochs=1"])
    for branch in ("audio", "visual"):
        train_branch(cfg2, branch, manifest=manifest)
    stack_dir = run_stack(cfg2, manifest=manifest)
    first = (stack_dir / "metrics.json").stat().st_mtime_ns
    assert run_stack(cfg2, manifest=manifest) and (stack_dir / "metrics.json").stat().st_mtime_ns == first
    train_branch(tiny_config(tmp, "restack", ["train.epochs=2"]), "audio", manifest=manifest, force=True)
    run_stack(cfg2, manifest=manifest)
    assert (stack_dir / "metrics.json").stat().st_mtime_ns != first  # redone: its inputs changed


def test_train_only_dataset_stacks_without_val_or_test(tmp_path):
    manifest = make_manifest(tmp_path, n_train=24, n_val=0, n_test=0)
    cfg = tiny_config(tmp_path, extra=["stack.lightgbm.min_child_samples=2", "train.epochs=1",
                                       "data.val_labels=null", "data.test_list=null"])
    for branch in ("audio", "visual"):
        train_branch(cfg, branch, manifest=manifest)
    stack_dir = run_stack(cfg, manifest=manifest)
    metrics = json.loads((stack_dir / "metrics.json").read_text())
    assert metrics["n_val"] == 0 and metrics["n_test"] == 0 and metrics["submission"] is None
    assert all(np.isfinite(m["oof_auc"]) for m in metrics["methods"])


def test_same_name_in_val_and_test_keeps_two_scores(tmp_path):
    manifest = make_manifest(tmp_path, n_train=16, n_val=4, n_test=4, no_audio=0, no_face=0)
    test_rows = manifest["split"] == "test"
    manifest.loc[test_rows, "video_name"] = manifest.loc[manifest["split"] == "val", "video_name"].to_numpy()
    # the test clips carry the opposite mark to the val clips of the same name
    manifest.loc[test_rows, "mel_file"] = manifest.loc[manifest["split"] == "train", "mel_file"].iloc[:4].to_numpy()
    cfg = tiny_config(tmp_path, extra=["train.epochs=1"])
    out = train_branch(cfg, "audio", manifest=manifest)
    per_fold = pd.concat(pd.read_csv(out / f"fold_{k}" / "predictions.csv") for k in range(2))
    for split, file in (("val", "val_pred.csv"), ("test", "test_pred.csv")):
        want = per_fold[per_fold["split"] == split].groupby("video_name")["prob"].mean()
        got = pd.read_csv(out / file).set_index("video_name")["prob"]
        np.testing.assert_allclose(got.to_numpy(), want.reindex(got.index).to_numpy())
    val = pd.read_csv(out / "val_pred.csv").set_index("video_name")["prob"]
    test = pd.read_csv(out / "test_pred.csv").set_index("video_name")["prob"]
    assert not np.allclose(val.to_numpy(), test.reindex(val.index).to_numpy())
