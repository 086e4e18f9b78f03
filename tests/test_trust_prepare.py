"""Inputs that used to pass as `ok` or `corrupt` when they were neither: truncated downloads, rotated
phone videos, long clips, audio-only files, names that differ only in case, leftovers of killed runs.

Every clip is made here with PyAV (see media_factory), so these run anywhere.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from media_factory import make_clip, make_labels, truncate
from mmdf.run_config import load_config
from mmdf.files import host_tag
from mmdf.prepare.cache import cache_root, clip_stem
from mmdf.prepare.manifest import COLUMNS, LABEL_COLUMNS
from mmdf.prepare.media import decode_audio, index_video, read_frames, read_frames_decord
from mmdf.prepare.row import KIND_FIELDS, ROW_COLUMNS, STATUS_ORDER, STATUSES, ManifestRow
from mmdf.prepare.runner import prepare_dataset

FAST = [
    "prepare.isolate=false", "prepare.progress=false", "prepare.faces.num_frames=4",
    "prepare.faces.detect_size=480", "prepare.faces.min_face_size=30", "prepare.faces.crop_size=64",
    "prepare.mel.image_size=64", "data.val_labels=null", "data.test_list=null",
]


def dataset(root, clips: dict) -> None:
    """A train split of ``clips`` (name -> function writing the clip at a path)."""
    for name, make in clips.items():
        make(root / "trainset" / name)
    make_labels(root / "trainset_label.txt", [(name, i % 2) for i, name in enumerate(clips)])


def prepare(root, cache, *extra):
    cfg = load_config(None, [f"data.root={root}", f"data.cache_dir={cache}", *FAST, *extra])
    return cfg, prepare_dataset(cfg).set_index("video_name")


@pytest.fixture(scope="module")
def cut_short(tmp_path_factory):
    """A download cut at 40% of its bytes (index at the front), a whole one, one with a short audio track."""
    root = tmp_path_factory.mktemp("cut")
    dataset(root, {
        "cut.mp4": lambda p: truncate(make_clip(p, duration=4.0, faststart=True), 0.4),
        "whole.mp4": lambda p: make_clip(p, duration=4.0, faststart=True),
        "short_audio.mp4": lambda p: make_clip(p, duration=3.0, audio_duration=1.5),
    })
    return root


def test_truncated_download_is_truncated_with_its_share(cut_short, tmp_path):
    _, manifest = prepare(cut_short, tmp_path)
    cut = manifest.loc["cut.mp4"]
    assert (cut.status, cut.audio_status, cut.visual_status) == ("truncated", "truncated", "truncated")
    assert cut.mel_file == "" and cut.faces_file == "", "skip: a truncated modality has no features"
    assert 0.2 < cut.audio_share < 0.6 and 0.2 < cut.video_share < 0.6
    assert "audio: truncated" in cut.error and "video: truncated" in cut.error and "decoded" in cut.error
    for name in ("whole.mp4", "short_audio.mp4"):  # a whole file, and an audio track shorter than the video
        row = manifest.loc[name]
        assert (row.status, row.audio_status, row.visual_status) == ("ok", "ok", "ok"), row.error
        assert row.audio_share == 1.0 and row.video_share == 1.0


def test_truncated_use_keeps_what_decoded(cut_short, tmp_path):
    _, manifest = prepare(cut_short, tmp_path, "prepare.truncated=use")
    cut = manifest.loc["cut.mp4"]
    assert (cut.status, cut.audio_status, cut.visual_status) == ("truncated", "ok", "ok")
    assert np.load(cut.mel_file).shape == (64, 64) and cut.frames_with_face >= 1
    assert "prepare.truncated=use" in cut.error


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_frames_come_upright(tmp_path, rotation):
    upright = make_clip(tmp_path / "upright.mp4", duration=1.2)
    phone = make_clip(tmp_path / "phone.mp4", duration=1.2, rotation=rotation)
    ours, _ = read_frames(phone, 4, skip_nonref=False)
    want, _ = read_frames(upright, 4, skip_nonref=False)
    assert np.abs(ours.astype(int) - want).mean() < 5  # encoding noise only
    theirs, _ = read_frames_decord(phone, 4)  # the fallback route agrees
    assert np.abs(theirs.astype(int) - want).mean() < 5


def test_rotated_phone_video_has_its_face_found(tmp_path):
    dataset(tmp_path / "ds", {"phone.mp4": lambda p: make_clip(p, duration=1.5, rotation=90)})
    _, manifest = prepare(tmp_path / "ds", tmp_path / "cache")
    row = manifest.loc["phone.mp4"]
    assert row.visual_status == "ok" and row.frames_with_face >= 3, row.error


def test_long_clip_uses_its_middle_only(tmp_path):
    long_clip = make_clip(tmp_path / "ds" / "trainset" / "long.mp4", duration=12.0, size=128, face=False)
    make_labels(tmp_path / "ds" / "trainset_label.txt", [("long.mp4", 0)])
    _, manifest = prepare(tmp_path / "ds", tmp_path / "cache", "prepare.max_duration=4")
    row = manifest.loc["long.mp4"]
    assert (row.span_start, row.span_end) == (pytest.approx(4.0, abs=0.05), pytest.approx(8.0, abs=0.05))
    assert row.duration == pytest.approx(12.0, abs=0.1) and row.audio_status == "ok" and row.audio_share == 1.0
    index = index_video(long_clip, (4.0, 8.0))  # packet timestamps of the span only, never the packets
    assert 95 <= len(index.targets) <= 101 and len(index.pts) <= 101 + 10  # 4 s at 25 fps (+ the GOP before)
    whole, peak_whole = traced_peak(decode_audio, long_clip)
    middle, peak_middle = traced_peak(decode_audio, long_clip, span=(4.0, 8.0))
    assert len(middle.signal) == pytest.approx(4.0 * 22050, abs=600) and middle.decoded == pytest.approx(4.0, abs=0.05)
    assert np.abs(middle.signal - whole.signal[4 * 22050: 8 * 22050]).mean() < 0.01  # the same audio
    assert peak_middle < peak_whole / 2, "only the span's audio is held"


def traced_peak(function, *args, **kwargs):
    """(result, peak bytes numpy and Python allocated while computing it)."""
    tracemalloc.start()
    try:
        result = function(*args, **kwargs)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_audio_only_file_has_no_video_not_corrupt(tmp_path):
    dataset(tmp_path / "ds", {"voice.mp4": lambda p: make_clip(p, video=False)})
    _, manifest = prepare(tmp_path / "ds", tmp_path / "cache")
    row = manifest.loc["voice.mp4"]
    assert (row.status, row.audio_status, row.visual_status) == ("no_video", "ok", "no_video")
    assert np.load(row.mel_file).shape == (64, 64) and row.faces_file == ""
    assert "no video stream" in row.error
    assert STATUS_ORDER.index("corrupt") < STATUS_ORDER.index("no_video")  # a damaged file stays corrupt


def test_feature_names_keep_case_and_extension_apart():
    stems = {clip_stem("train", n) for n in ("clip.mp4", "clip.MP4", "Clip.mp4", "clip.mp4.mp4")}
    assert len(stems) == 4
    long_a, long_b = "a" * 240 + "1.mp4", "a" * 240 + "2.mp4"
    assert clip_stem("train", long_a) != clip_stem("train", long_b)
    assert len(clip_stem("train", long_a).encode()) <= 220  # room for '.npy' and the temporary suffix


def test_killed_runs_temporary_files_are_removed(tmp_path):
    dataset(tmp_path / "ds", {"a.mp4": lambda p: make_clip(p, duration=1.2)})
    cfg, _ = prepare(tmp_path / "ds", tmp_path / "cache")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stray = cache_root(cfg) / "mel" / "train" / f".a.mp4.npy.{int(dead.stdout)}-{host_tag()}.mmdf-tmp"
    live = cache_root(cfg) / "faces" / "train" / f".b.mp4.npy.{os.getpid()}-{host_tag()}.mmdf-tmp"
    stray.write_bytes(b"half")
    live.write_bytes(b"being written")
    prepare(tmp_path / "ds", tmp_path / "cache")
    assert not stray.exists() and live.exists()


def test_one_definition_of_the_row():
    assert COLUMNS == LABEL_COLUMNS + ROW_COLUMNS
    assert {"audio_share", "video_share", "span_start", "span_end"} <= set(ROW_COLUMNS)
    assert "prepared_at" not in ROW_COLUMNS and "source" not in ROW_COLUMNS  # journal only
    assert KIND_FIELDS["mel"] == ("audio_status", "audio_share", "mel_file")
    assert set(STATUS_ORDER) | {"ok"} == set(STATUSES)
    old = {"split": "train", "video_name": "a.mp4", "status": "ok", "mel_file": "mel/train/a.npy", "extra": 1}
    row = ManifestRow.from_record(old)  # a journal line written before the new fields existed
    assert row.mel_file == "mel/train/a.npy" and math.isnan(row.audio_share) and row.visual_status == "ok"
