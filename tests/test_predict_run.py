"""`mmdf predict` as a user meets it: a folder of mixed containers and bad files, a second call that
prepares nothing, a killed call resumed, JSON lines and the verdict for a single file.

A tiny trained run (tests/train_factory.py: synthetic features, tiny models) scores clips that
are really decoded and prepared (PyAV-written clips with the astronaut's face and a tone).
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from media_factory import face_frame, make_clip
from train_factory import make_manifest, tiny_config

from mmdf.cli import main
from mmdf.predict.predict import Predictor, predict_clips
from mmdf.train.trained import TrainedBranch

# cheap preprocessing, in this process: the clips are 256 px, the models see 32 px
PREP = ["prepare.workers=1", "prepare.isolate=false", "prepare.progress=false", "prepare.faces.num_frames=4",
        "prepare.faces.detect_size=128", "prepare.faces.min_face_size=20", "prepare.faces.crop_size=64",
        "prepare.mel.image_size=64"]
SCORABLE = ["clip.avi", "clip.mkv", "clip.mov", "clip.mp4", "clip.webm", "noaudio.mp4"]


def make_webm(path: Path, duration: float = 1.6, size: int = 256, fps: int = 25, rate: int = 48000) -> Path:
    """VP8 + Opus in WebM (H.264/AAC are not allowed there), the astronaut's face and a tone."""
    import av

    with av.open(str(path), "w") as c:
        v = c.add_stream("libvpx", rate=fps)
        v.width = v.height = size
        v.pix_fmt = "yuv420p"
        a = c.add_stream("libopus", rate=rate)
        a.layout = "mono"
        for i in range(int(duration * fps)):
            c.mux(v.encode(av.VideoFrame.from_ndarray(face_frame(size, shift=2 * i % 20), format="rgb24")))
        c.mux(v.encode())
        n = int(duration * rate)
        tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / rate)).astype(np.float32)
        for s in range(0, n, 960):
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[None, s:s + 960]), format="flt", layout="mono")
            f.sample_rate, f.pts, f.time_base = rate, s, Fraction(1, rate)
            c.mux(a.encode(f))
        c.mux(a.encode())
    return path


def make_mixed_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".mp4", ".mov", ".mkv", ".avi"):
        make_clip(folder / f"clip{suffix}", duration=1.6)
    make_webm(folder / "clip.webm")
    make_clip(folder / "noaudio.mp4", duration=1.6, audio=None)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("this is not a video\n")
    (folder / "notes.txt").write_text("notes about the clips\n")
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny trained, stacked run and a folder of mixed inputs."""
    return make_tiny_run(tmp_path_factory.mktemp("predict_run"))


def make_tiny_run(tmp: Path) -> tuple[Path, Path]:
    """(run folder, folder of mixed inputs) of a tiny trained, stacked run (audio and visual branches)."""
    from mmdf.stack.run import run_stack
    from mmdf.train.kfold import train_branch

    manifest = make_manifest(tmp)
    cfg = tiny_config(tmp, extra=["stack.lightgbm.min_child_samples=2", "train.epochs=1",
                                  f"data.cache_dir={tmp / 'prep'}", *PREP])
    for branch in ("audio", "visual"):
        train_branch(cfg, branch, manifest=manifest)
    run_stack(cfg, manifest=manifest)
    return cfg.run_dir, make_mixed_folder(tmp / "mixed")


def test_every_input_has_a_row_and_unscorable_ones_no_prob(run, tmp_path):
    run_dir, folder = run
    scores = predict_clips(run_dir, [folder, tmp_path / "absent.mp4"], cache_dir=tmp_path / "cache", progress=False)
    names = ["clip.avi", "clip.mkv", "clip.mov", "clip.mp4", "clip.webm", "empty.mp4", "noaudio.mp4", "notes.txt",
             "text.mp4", "absent.mp4"]
    assert scores["video_name"].tolist() == names  # folder sorted, then the explicit input
    by = scores.set_index("video_name")
    assert by.loc[["empty.mp4", "text.mp4", "notes.txt", "absent.mp4"], "status"].tolist() == \
        ["corrupt", "corrupt", "unsupported", "missing"]
    unscorable = by.drop(index=SCORABLE)
    assert unscorable["prob"].isna().all() and unscorable["decision"].isna().all()
    assert unscorable["reason"].str.startswith("not scored").all()
    ok = by.loc[SCORABLE]
    assert ok["prob"].between(0, 1).all() and ok["decision"].isin(["fake", "real"]).all()
    assert ok["reason"].str.contains("audio").all() and ok["reason"].str.contains("pushed").all()
    assert by.loc["noaudio.mp4", "status"] == "no_audio" and np.isnan(by.loc["noaudio.mp4", "audio_prob"])
    assert by.loc["noaudio.mp4", "n_branches_scored"] == 1 and by.loc["clip.webm", "n_branches_scored"] == 2
    # the decision follows the stored threshold on the raw score
    assert ((ok["score"] >= ok["threshold"]) == (ok["decision"] == "fake")).all()
    assert not (run_dir / "prep").exists() or not any((run_dir / "prep").rglob("predict"))  # not the training cache


def test_second_call_prepares_nothing_and_a_changed_file_again(run, tmp_path, monkeypatch):
    import mmdf.prepare.runner as runner

    run_dir, folder = run
    clips = [folder / n for n in SCORABLE]
    first = predict_clips(run_dir, clips, cache_dir=tmp_path / "cache", progress=False)
    calls = []
    real = runner.prepare_clips

    def counting(paths, cfg, workers=None, borrow=None):
        calls.append([Path(p).name for p in paths])
        return real(paths, cfg, workers=workers, borrow=borrow)

    real_score, scored = TrainedBranch.score, []

    def counting_score(self, rows):
        scored.append(rows["video_name"].tolist())
        return real_score(self, rows)

    monkeypatch.setattr(runner, "prepare_clips", counting)
    monkeypatch.setattr(TrainedBranch, "score", counting_score)
    second = predict_clips(run_dir, clips, cache_dir=tmp_path / "cache", progress=False)
    assert calls == [] and scored == []  # features and branch scores of files already scored are reused
    pd.testing.assert_frame_equal(first, second)
    make_clip(folder / "clip.mov", duration=1.7, seed=3)  # replaced: a new size and mtime
    predict_clips(run_dir, clips, cache_dir=tmp_path / "cache", progress=False)
    assert calls == [["clip.mov"]] and scored == [["clip.mov"], ["clip.mov"]]  # prepared, and scored by both


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_killed_call_resumed_gives_the_same_file(run, tmp_path, monkeypatch, fmt):
    run_dir, folder = run
    inputs = [folder, tmp_path / "absent.mp4"]
    whole, cut = tmp_path / f"whole.{fmt}", tmp_path / f"cut.{fmt}"
    kw = dict(batch_size=3, cache_dir=tmp_path / "cache", progress=False, fmt=fmt)
    expected = predict_clips(run_dir, inputs, out=whole, **kw)
    real_score, chunks = Predictor.score, []

    def dying(self, paths, workers=None):
        if len(chunks) == 2:
            raise KeyboardInterrupt  # killed while the third chunk was scored
        chunks.append(len(paths))
        return real_score(self, paths, workers)

    monkeypatch.setattr(Predictor, "score", dying)
    with pytest.raises(KeyboardInterrupt):
        predict_clips(run_dir, inputs, out=cut, **kw)
    monkeypatch.setattr(Predictor, "score", real_score)
    lines = cut.read_text().splitlines()
    assert len(lines) == 6 + (fmt == "csv")  # two chunks of 3 rows were on disk
    with open(cut, "a") as fh:
        fh.write(lines[-1][:10])  # a torn line, as a kill in the middle of a write leaves
    resumed = predict_clips(run_dir, inputs, out=cut, resume=True, **kw)
    assert cut.read_text() == whole.read_text()
    assert resumed["path"].tolist() == expected["path"].tolist()


def test_cli_json_lines_and_a_verdict_for_one_file(run, tmp_path, capsys):
    run_dir, folder = run
    out = tmp_path / "one.jsonl"
    argv = ["predict", "--run", str(run_dir), str(folder / "clip.mp4"), "--out", str(out),
            "--cache", str(tmp_path / "cache"), "--no-progress", "--fpr", "0.001"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "scored 1 of 1 clip(s)" in printed and ("FAKE" in printed or "REAL" in printed)
    row = json.loads(out.read_text())
    assert row["target_fpr"] == 0.001 and 0 <= row["prob"] <= 1 and row["decision"] in ("fake", "real")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{folder / 'empty.mp4'}\n")
    assert main(["predict", "--run", str(run_dir), str(listing), "--out", str(tmp_path / "bad.jsonl"),
                 "--cache", str(tmp_path / "cache"), "--no-progress"]) == 0
    assert "not scored (corrupt: empty file" in capsys.readouterr().out
    assert json.loads((tmp_path / "bad.jsonl").read_text())["prob"] is None


def test_unknown_fpr_is_refused_with_the_stored_ones(run, tmp_path, capsys):
    run_dir, folder = run
    assert main(["predict", "--run", str(run_dir), str(folder / "clip.mp4"), "--fpr", "0.05",
                 "--out", str(tmp_path / "x.csv")]) == 2
    assert "no threshold stored for FPR 0.05; this run has: 0.001, 0.01" in capsys.readouterr().err


def test_a_copy_with_one_stream_reencoded_makes_only_the_other_half(run, tmp_path, monkeypatch):
    """share_streams (the audit's route): the copied stream's half is linked from the original's, in the same call."""
    from mmdf.audit.perturb import crf32, resample_16k
    from mmdf.prepare import clip as clip_module

    run_dir, folder = run
    src = folder / "clip.mp4"
    crf32(src, tmp_path / "video_changed.mp4")  # audio copied
    resample_16k(src, tmp_path / "audio_changed.mp4")  # video copied
    made = []
    for name in ("_make_mel", "_make_faces"):
        real = getattr(clip_module, name)
        monkeypatch.setattr(clip_module, name,
                            lambda job, real=real, name=name: made.append((name, Path(job.task.path).name)) or real(job))
    real_track = clip_module.mouth_track
    monkeypatch.setattr(clip_module, "mouth_track",  # the sync half's costly part: the mouth over its window
                        lambda path, *a, **k: made.append(("mouth_track", Path(path).name)) or real_track(path, *a, **k))
    inputs = [src, tmp_path / "video_changed.mp4", tmp_path / "audio_changed.mp4"]
    scores = predict_clips(run_dir, inputs, cache_dir=tmp_path / "cache", progress=False, share_streams=True)
    assert sorted(made) == [("_make_faces", "clip.mp4"), ("_make_faces", "video_changed.mp4"),
                            ("_make_mel", "audio_changed.mp4"), ("_make_mel", "clip.mp4"),
                            ("mouth_track", "clip.mp4"), ("mouth_track", "video_changed.mp4")]
    by = scores.set_index("video_name")
    assert by.loc["audio_changed.mp4", "visual_prob"] == by.loc["clip.mp4", "visual_prob"]
    assert by.loc["video_changed.mp4", "audio_prob"] == by.loc["clip.mp4", "audio_prob"]
    assert (by["status"] == "ok").all()
    made.clear()
    predict_clips(run_dir, inputs[1:], cache_dir=tmp_path / "plain", progress=False)  # the default shares nothing
    assert len(made) == 6


def test_stream_keys_follow_the_stream_not_the_file(tmp_path):
    from mmdf.audit.media import ffmpeg
    from mmdf.prepare.streams import stream_key

    src = make_clip(tmp_path / "src.mp4", duration=1.6)
    ffmpeg(["-i", str(src), "-c", "copy", "-f", "mp4", str(tmp_path / "remux.mp4")])
    ffmpeg(["-display_rotation", "90", "-i", str(src), "-c", "copy", "-f", "mp4", str(tmp_path / "turned.mp4")])
    key = {kind: stream_key(src, kind, 60.0) for kind in ("mel", "faces")}
    assert all(key.values()) and key["mel"] != key["faces"]
    assert {kind: stream_key(tmp_path / "remux.mp4", kind, 60.0) for kind in key} == key  # same packets
    assert stream_key(tmp_path / "turned.mp4", "faces", 60.0) != key["faces"]  # a new display matrix: not shared
    assert stream_key(tmp_path / "turned.mp4", "mel", 60.0) == key["mel"]
    assert stream_key(src, "mel", 1.0) != key["mel"]  # cut to its middle second: another span
    assert stream_key(make_clip(tmp_path / "mute.mp4", duration=1.6, audio=None), "mel", 60.0) is None
    (tmp_path / "text.mp4").write_text("not a video")
    assert stream_key(tmp_path / "text.mp4", "faces", 60.0) is None
