"""`mmdf predict` on a tiny trained run: real trainer outputs, stacked, then new clips scored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from train_factory import make_manifest, tiny_config

from mmdf.cli import main
from mmdf.errors import MmdfError
from mmdf.predict.predict import collect_inputs, predict_clips
from mmdf.stack.run import run_stack


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from mmdf.train.kfold import train_branch

    tmp = tmp_path_factory.mktemp("predict")
    manifest = make_manifest(tmp)
    cfg = tiny_config(tmp, extra=["stack.lightgbm.min_child_samples=2", f"data.cache_dir={tmp / 'prep'}",
                                  "prepare.workers=1", "prepare.faces.num_frames=4"])
    for branch in ("audio", "visual"):
        train_branch(cfg, branch, manifest=manifest)
    run_stack(cfg, manifest=manifest)
    return cfg, manifest


def _fake_prepare(manifest):
    """prepare_clips stand-in: the cached test rows of the manifest, by file name; else missing."""
    by_name = manifest[manifest["split"] == "test"].set_index("video_name")

    def prepare_clips(paths, cfg, workers=None, borrow=None):
        rows = []
        for p in paths:
            name = p.name
            if name in by_name.index:
                row = by_name.loc[name].to_dict()
            else:
                row = {"target": pd.NA, "status": "missing", "error": f"file not found: {p}",
                       "audio_status": "missing", "visual_status": "missing", "duration": np.nan,
                       "has_audio": False, "frames_sampled": 0, "frames_with_face": 0,
                       "face_conf_mean": np.nan, "mel_file": "", "faces_file": ""}
            rows.append({**row, "split": "predict", "video_name": name, "path": str(p)})
        return pd.DataFrame(rows)

    return prepare_clips


def test_predict_scores_every_input_and_matches_the_submission(trained_run, tmp_path, monkeypatch):
    cfg, manifest = trained_run
    monkeypatch.setattr("mmdf.prepare.runner.prepare_clips", _fake_prepare(manifest))
    names = manifest.loc[manifest["split"] == "test", "video_name"].tolist()
    inputs = [tmp_path / n for n in names] + [tmp_path / "absent.mp4"]
    for p in inputs[:-1]:
        p.write_bytes(b"not decoded: the stand-in prepare_clips serves the cached rows")
    scores = predict_clips(cfg.run_dir, inputs, batch_size=4, cache_dir=tmp_path / "pc", progress=False)
    assert scores["path"].tolist() == [str(p) for p in inputs]  # chunks of 4: two chunks
    assert scores["status"].tolist()[-1] == "missing" and np.isnan(scores["prob"].iloc[-1])
    ok = scores.iloc[:-1]
    assert ok["prob"].between(0, 1).all() and ok["decision"].isin(["fake", "real"]).all()
    # the same clips were scored into the submission by the trainer's test predictions + stacker
    sub = pd.read_csv(cfg.run_dir / "submission.csv")
    np.testing.assert_allclose(ok["score"].to_numpy(), sub["y_pred"].to_numpy(), atol=1e-5)


@pytest.mark.slow
def test_predict_real_clips_through_the_cli(trained_run, realdata, tmp_path, capsys):
    cfg, _ = trained_run
    listing = tmp_path / "clips.txt"
    listing.write_text(f"{realdata / 'corrupted.mp4'}\n{tmp_path / 'absent.mp4'}\n")
    out = tmp_path / "scores.csv"
    argv = ["predict", "--run", str(cfg.run_dir), str(realdata / "dfdc_real_lynaeydofd.mp4"), str(listing),
            "--out", str(out)]
    assert main(argv + ["--cache", str(tmp_path / "pc"), "--no-progress"]) == 0
    assert "scored 1 of 3 clip(s)" in capsys.readouterr().out
    scores = pd.read_csv(out)
    assert scores["status"].tolist() == ["ok", "corrupt", "missing"]
    assert scores["n_branches_scored"].tolist() == [2, 0, 0]
    assert 0 <= scores["prob"].iloc[0] <= 1
    assert scores["prob"].iloc[1:].isna().all()  # no number made up for what no branch scored


def test_collect_inputs_expands_folders_and_lists(tmp_path):
    clips = tmp_path / "clips"
    (clips / "sub").mkdir(parents=True)
    for n in ("b.mp4", "a.mov", "notes.txt", ".hidden.mp4", "sub/c.mkv"):
        (clips / n).write_bytes(b"")
    listing = tmp_path / "list.txt"
    listing.write_text("video_name\nclips/a.mov\n/abs/x.mp4\n\n")
    got = collect_inputs([clips, listing, tmp_path / "gone.mp4"])
    # every file of a folder is an input (notes.txt comes out `unsupported`), hidden ones are not
    assert got == [clips / "a.mov", clips / "b.mp4", clips / "notes.txt", tmp_path / "clips/a.mov",
                   Path("/abs/x.mp4"), tmp_path / "gone.mp4"]
    assert collect_inputs([clips], recursive=True)[-1] == clips / "sub" / "c.mkv"
    with pytest.raises(MmdfError, match="no clips to score"):
        collect_inputs([])


def test_predict_cli_refuses_an_unstacked_run(tmp_path, capsys):
    assert main(["predict", "--run", str(tmp_path / "nope"), str(tmp_path / "a.mp4")]) == 2
    assert "mmdf stack" in capsys.readouterr().err
