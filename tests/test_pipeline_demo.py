"""The one-command demo, end to end on a tiny demo dataset, then `mmdf predict` on bad clips.

It composes the real configs of ``configs/demo/`` and only shrinks them
(sizes, epochs, models), so a broken demo config or a broken hand-over
between steps fails here.
"""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from demo_factory import DEMO_SHRINK, TINY_DEMO_SIZES
from mmdf.cli import main
from mmdf.experiment.spec import load_pipeline
from mmdf.pipeline.demo import demo_config_dir, run_demo



@pytest.fixture(scope="module")
def demo_run(tiny_demo):
    tmp = tiny_demo
    overrides = [f"data.root={tmp / 'data'}", f"data.cache_dir={tmp / 'cache'}", f"runs_dir={tmp / 'runs'}",
                 *DEMO_SHRINK]
    run_dir = run_demo(overrides, **TINY_DEMO_SIZES)
    return tmp, overrides, run_dir


def test_demo_configs_share_one_run_and_one_cache():
    cfgs = load_pipeline(demo_config_dir() / "pipeline.yaml").trials[0].configs
    assert set(cfgs) == {"prepare", "audio", "visual", "sync", "audio_stats", "visual_stats", "sync_stats", "stack"}
    assert {c.run_dir for c in cfgs.values()} == {cfgs["stack"].run_dir}
    assert len({(c.data, c.prepare, c.folds) == (cfgs["prepare"].data, cfgs["prepare"].prepare, cfgs["prepare"].folds)
                for c in cfgs.values()}) == 1


def test_demo_writes_submission_and_report(demo_run):
    tmp, _, run_dir = demo_run
    test_list = pd.read_csv(tmp / "data" / "testset_list.txt")
    sub = pd.read_csv(run_dir / "submission.csv")
    assert sub.columns.tolist() == ["video_name", "y_pred"]
    assert sub["video_name"].tolist() == test_list["video_name"].tolist()
    assert sub["y_pred"].between(0, 1).all() and sub["y_pred"].notna().all()
    report = (run_dir / "report.md").read_text()
    assert "tpr@fpr=0.001" in report and "no_face" in report and "roc.png" in report
    for branch in ("audio", "visual", "sync", "audio_stats", "visual_stats", "sync_stats"):
        oof = pd.read_csv(run_dir / branch / "oof.csv")
        assert len(oof) == 24  # every train clip, scored or NaN with its status
        assert json.loads((run_dir / branch / "metrics.json").read_text())["oof"]["auc"] >= 0
    # each hard case reached its branch as a missing value, never a made-up score
    made = pd.read_csv(tmp / "data" / "manifest.csv")
    oof_audio = pd.read_csv(run_dir / "audio" / "oof.csv").merge(made, on="video_name")
    assert oof_audio.loc[oof_audio.hard_case == "no_audio", "prob"].isna().all()
    oof_visual = pd.read_csv(run_dir / "visual" / "oof.csv").merge(made, on="video_name")
    assert oof_visual.loc[oof_visual.hard_case == "no_face", "prob"].isna().all()


def test_second_demo_run_reuses_everything(demo_run):
    tmp, overrides, run_dir = demo_run
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file() and p.name != "demo_timings.json"}
    run_demo(overrides, **TINY_DEMO_SIZES)
    after = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file() and p.name != "demo_timings.json"}
    assert after == before


def test_predict_folder_with_corrupt_silent_and_faceless_clips(demo_run, realdata, tmp_path):
    tmp, _, run_dir = demo_run
    made = pd.read_csv(tmp / "data" / "manifest.csv")
    folder = tmp_path / "new"
    folder.mkdir()
    picks = {}
    for case in ("silent", "no_face", ""):
        row = made[made.hard_case.fillna("") == case].iloc[0]
        src = tmp / "data" / f"{row.split}set" / row.video_name
        picks[case or "plain"] = f"{case or 'plain'}.mp4"
        shutil.copy(src, folder / picks[case or "plain"])
    shutil.copy(realdata / "corrupted.mp4", folder / "corrupt.mp4")
    out = tmp_path / "scores.csv"
    assert main(["predict", "--run", str(run_dir), str(folder), "--out", str(out), "--workers", "1"]) == 0
    scores = pd.read_csv(out).assign(name=lambda d: d["path"].map(lambda p: p.rsplit("/", 1)[-1])).set_index("name")
    assert sorted(scores.index) == sorted(["corrupt.mp4", *picks.values()])  # every input has a row
    assert scores.loc["corrupt.mp4", "status"] == "corrupt"
    assert scores.loc["no_face.mp4", "status"] == "no_face"
    assert scores.loc["silent.mp4", "status"] == "ok"  # silence is a valid (if odd) audio track
    assert scores.loc["plain.mp4", "status"] == "ok"
    # scored from whatever is left (the stacker's metadata path for the corrupt one), all in [0, 1]
    assert scores.drop(index="corrupt.mp4")["prob"].between(0, 1).all() and pd.isna(scores.loc["corrupt.mp4", "prob"])
    assert scores.loc["no_face.mp4", "n_branches_scored"] == 2  # audio and audio_stats; no face for the other two
