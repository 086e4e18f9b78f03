"""benchmarks/bench_prepare.py: its limits decode what they claim, its timing interleaves, its rows add up."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from media_factory import make_clip
from mmdf.prepare.config import FaceConfig, MelConfig, PrepareConfig
from mmdf.prepare.media import decode_audio, read_frames


@pytest.fixture(scope="module")
def bench(repo_root):
    spec = importlib.util.spec_from_file_location("bench_prepare", repo_root / "benchmarks" / "bench_prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_interleaved_runs_every_route_on_every_item_each_repeat(bench):
    calls = []
    routes = {name: (lambda item, name=name: calls.append((name, item))) for name in ("a", "b", "c")}
    wall, cpu = bench.interleaved(routes, [1, 2], repeats=4)
    assert set(wall) == set(cpu) == {"a", "b", "c"} and all(v >= 0 for v in [*wall.values(), *cpu.values()])
    assert len(calls) == 3 * 2 * 4
    for start in range(0, len(calls), 3):  # item by item, every route once each, in varying orders
        assert sorted(c[0] for c in calls[start:start + 3]) == ["a", "b", "c"]
        assert len({c[1] for c in calls[start:start + 3]}) == 1
    assert len({tuple(c[0] for c in calls[s:s + 3]) for s in range(0, len(calls), 3)}) > 1


def test_audio_limit_decodes_the_whole_track(bench, tmp_path):
    clip = make_clip(tmp_path / "a.mp4", duration=2.0, sample_rate=44100)
    samples = bench.bare_audio_decode(clip)
    assert samples == pytest.approx(2.0 * 44100, abs=2048)  # AAC pads a frame or two
    resampled = bench.resample_alone(bench.decoded_audio_frames(clip), 22050, 44100)
    np.testing.assert_array_equal(resampled, decode_audio(clip).signal)  # the recipe's own resampling, alone


def test_frame_limit_decodes_up_to_the_last_sampled_frame(bench, tmp_path):
    clip = make_clip(tmp_path / "v.mp4", duration=2.0)  # 50 frames
    plan = bench.frame_plan(clip, 4)
    assert plan[0][0] == 0 and all(key <= last for key, last in plan)
    decoded = bench.bare_frame_decode(clip, plan, skip_nonref=False)
    frames, _ = read_frames(clip, 4, skip_nonref=False)
    assert len(frames) == 4 and 4 <= decoded <= 50


def test_rows_and_table(bench, tmp_path):
    clips = [make_clip(tmp_path / f"{i}.mp4", duration=1.5, seed=i) for i in range(2)]
    audio = bench.bench_audio(clips, MelConfig(image_size=64), repeats=1)
    faces = bench.bench_faces(clips[:1], FaceConfig(num_frames=4, detect_size=128, crop_size=64), "toy", repeats=1)
    assert audio["mmdf_over_limit"] > 0 and audio["mean_abs_diff_grey_levels_max"] <= 4.0
    assert faces["frames_with_face_mmdf"] == 4 and faces["same_main_face_share"] == 1.0
    assert faces["key_frames"] == 2 and faces["floor_over_limit"] > 1
    faces_cfg = FaceConfig(num_frames=6, detect_size=128, crop_size=64)
    halves = bench.bench_halves(clips[:1], PrepareConfig(mel=MelConfig(image_size=64), faces=faces_cfg), "toy", 1)
    assert set(halves["ms_per_clip"]) == {"mel", "faces", "sync"} and min(halves["ms_per_clip"].values()) > 0
    table = bench.format_table({"audio": {"toy": audio}, "faces": {"toy": faces}, "halves": {"toy": halves},
                                "peak_rss_mib": 1.0})
    assert "x limit" in table and "floor" in table and "MTCNN" in table and "x faces" in table
