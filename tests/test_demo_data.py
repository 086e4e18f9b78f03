"""The synthetic demo dataset: layout, streams, determinism, resumability, and cues.

One tiny dataset (16/8/4 clips) is rendered once per module; the checks decode
it with PyAV, find its faces with facenet-pytorch's MTCNN and measure its
mel spectrograms the way the audio branch will.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from mmdf.cli import main
from mmdf.data.config import DataConfig
from mmdf.data.labels import load_dataset, read_labels
from mmdf.demo.dataset import FORMAT_VERSION, make_clip, make_demo_dataset
from mmdf.demo.plan import FPS, HARD_CASES, KINDS, SPLIT_DIRS, SYNC_METHODS, SYNC_OFFSET_RANGE, plan_dataset
from mmdf.demo.render import mouth_track, render_audio, render_frames
from mmdf.errors import MmdfError

SIZES = dict(n_train=16, n_val=8, n_test=4, seed=3)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "demo", workers=2, **SIZES)


@pytest.fixture(scope="module")
def manifest(demo) -> pd.DataFrame:
    return pd.read_csv(demo / "manifest.csv", keep_default_na=False)


def clip(demo: Path, row) -> Path:
    return demo / SPLIT_DIRS[row["split"]] / row["video_name"]


def decode_video(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def decode_audio(path: Path, rate: int = 22050) -> np.ndarray:
    with av.open(str(path)) as c:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        return np.concatenate([r.to_ndarray().reshape(-1) for f in c.decode(audio=0) for r in resampler.resample(f)])


def high_band_level(y: np.ndarray) -> float:
    """Mean of the top 12 of 128 mel bands (~8-11 kHz) in the reference recipe's 0-255 image."""
    import librosa

    S = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=22050, n_mels=128), ref=np.max)
    img = (S - S.min()) / (S.max() - S.min() + 1e-9) * 255
    return float(img[-12:].mean())


def test_layout_and_labels_load(demo, manifest):
    data = load_dataset(DataConfig(root=str(demo)))
    assert Counter(data["split"]) == {"train": 16, "val": 8, "test": 4}
    assert data.loc[data["split"] == "test", "target"].isna().all()
    assert all(re.fullmatch(r"[0-9a-f]{32}\.mp4", n) for n in data["video_name"])
    assert (demo / "testset_list.txt").read_text().splitlines()[0] == "video_name"
    labelled = data[data["split"] != "test"].merge(manifest, on=["split", "video_name"], suffixes=("", "_m"))
    assert len(labelled) == 24 and (labelled["target"].astype(int) == labelled["target_m"]).all()
    assert set(manifest["kind"]) <= set(KINDS) and set(manifest["hard_case"]) <= {"", *HARD_CASES}
    assert ((manifest["kind"] == "real") == (manifest["target"] == 0)).all()
    for split in ("train", "val"):
        rows = manifest[manifest["split"] == split]
        assert set(HARD_CASES) <= set(rows["hard_case"]), split
    assert set(KINDS) <= set(manifest.loc[manifest["split"] == "train", "kind"])
    for col in ("identity", "voice_f0", "duration", "clip_seed"):
        assert col in manifest


def test_clips_decode_with_expected_streams(demo, manifest):
    for _, row in manifest.iterrows():
        with av.open(str(clip(demo, row))) as c:
            v = c.streams.video[0]
            assert (v.codec_context.name, v.width, v.height, v.format.name) == ("h264", 256, 256, "yuv420p")
            assert v.average_rate == 25
            assert len(c.streams.audio) == (0 if row["hard_case"] == "no_audio" else 1), row["video_name"]
            if c.streams.audio:
                a = c.streams.audio[0]
                assert (a.codec_context.name, a.rate, a.channels) == ("aac", 22050, 1)
        frames = decode_video(clip(demo, row))
        assert len(frames) == row["n_frames"]
        lo, hi = (0.3, 0.5) if row["hard_case"] == "short" else (2.0, 4.0)
        assert lo - 0.02 <= row["duration"] <= hi + 0.02
        if row["hard_case"] != "no_audio":
            y = decode_audio(clip(demo, row))
            assert abs(len(y) / 22050 - row["duration"]) < 0.1
            if row["hard_case"] == "silent":
                assert np.abs(y).max() < 1e-4
            else:
                assert np.abs(y).max() > 0.05


def test_faces_found_by_mtcnn_except_in_no_face(demo, manifest):
    import torch
    from facenet_pytorch import MTCNN

    torch.set_num_threads(1)
    mtcnn = MTCNN(keep_all=True, device="cpu")
    normal = manifest[manifest["hard_case"] == ""]
    checked = pd.concat([normal[normal["kind"] == "real"].head(3), normal[normal["kind"] == "fake_visual"].head(2)])
    for _, row in checked.iterrows():
        frames = decode_video(clip(demo, row))
        picks = frames[np.linspace(0, len(frames) - 1, 8).round().astype(int)]
        boxes, _ = mtcnn.detect(list(picks))
        found = sum(b is not None for b in boxes)
        assert found >= 7, f"{row['kind']} {row['video_name']}: face in {found}/8 frames"
    no_face = manifest[manifest["hard_case"] == "no_face"]
    for _, row in no_face.iterrows():
        frames = decode_video(clip(demo, row))
        boxes, _ = mtcnn.detect(list(frames[:: max(1, len(frames) // 8)]))
        assert all(b is None for b in boxes), row["video_name"]


def test_audio_fakes_lose_the_band_above_8khz(demo, manifest):
    with_voice = manifest[~manifest["hard_case"].isin(["no_audio", "silent"])]
    levels = {r["video_name"]: high_band_level(decode_audio(clip(demo, r))) for _, r in with_voice.iterrows()}
    fake = [levels[n] for n in with_voice.loc[with_voice["kind"].isin(["fake_audio", "fake_both"]), "video_name"]]
    genuine = [levels[n] for n in with_voice.loc[with_voice["kind"].isin(["real", "fake_visual", "fake_sync"]), "video_name"]]
    assert fake and genuine and max(fake) + 20 < min(genuine), (fake, genuine)


def test_each_fake_changes_only_its_modality():
    specs = plan_dataset(**SIZES)
    audio_fake = next(s for s in specs if s.kind == "fake_audio" and not s.hard_case)
    assert all(np.array_equal(a, b) for a, b in zip(render_frames(audio_fake), render_frames(audio_fake.as_real())))
    assert not np.allclose(render_audio(audio_fake), render_audio(audio_fake.as_real()))

    visual_fake = next(s for s in specs if s.kind == "fake_visual" and not s.hard_case)
    assert np.array_equal(render_audio(visual_fake), render_audio(visual_fake.as_real()))
    fake, real = np.stack(list(render_frames(visual_fake))), np.stack(list(render_frames(visual_fake.as_real())))
    changed = np.abs(fake.astype(int) - real.astype(int)).max(axis=(0, 3)) > 0
    ys, xs = np.nonzero(changed)
    # only the inner face changed: a region smaller than the 150 px face plus head motion
    assert changed.any() and np.ptp(ys) < 160 and np.ptp(xs) < 140
    assert not changed[:, :30].any() and not changed[:, -30:].any() and not changed[-30:].any()


@pytest.mark.parametrize("method", SYNC_METHODS)
def test_a_sync_fake_is_its_real_twin_but_for_the_mouth(method):
    spec = next(s for s in plan_dataset(**SIZES) if s.fake_sync and s.sync_method == method)
    twin = spec.as_real()
    assert spec.target == 1 and not (spec.fake_video or spec.fake_audio or spec.hard_case)
    assert np.array_equal(render_audio(spec), render_audio(twin))
    fake, real = np.stack(list(render_frames(spec))), np.stack(list(render_frames(twin)))
    opening, twin_opening = mouth_track(spec), mouth_track(twin)
    same = opening == twin_opening
    assert (~same).sum() > len(same) // 2, "out of step most of the time"
    assert all(np.array_equal(fake[i], real[i]) for i in np.flatnonzero(same))
    changed = (fake != real).any(axis=3)
    assert changed[~same].any(axis=(1, 2)).mean() > 0.9
    for i in np.flatnonzero(~same):  # where the openings differ, only the mouth did
        ys, xs = np.nonzero(changed[i])
        assert len(ys) == 0 or (np.ptp(ys) < 40 and np.ptp(xs) < 60), (i, np.ptp(ys), np.ptp(xs))


def best_lag(fake: np.ndarray, real: np.ndarray, max_lag: int) -> int:
    """The lag (frames) at which fake[i] best matches real[i + lag]: Pearson correlation over the overlap."""
    n = len(fake)

    def corr(lag: int) -> float:
        a, b = fake[max(0, -lag) : n - max(0, lag)], real[max(0, lag) : n - max(0, -lag)]
        return float(np.corrcoef(a, b)[0, 1]) if len(a) > 2 and a.std() > 0 and b.std() > 0 else -1.0

    return max(range(-max_lag, max_lag + 1), key=corr)


def test_an_offset_sync_fake_mouths_the_voice_shifted_by_its_offset():
    offsets = [s for s in plan_dataset(60, 20, 20, seed=0) if s.fake_sync and s.sync_method == "offset"]
    assert len(offsets) >= 4 and {np.sign(s.sync_offset) for s in offsets} == {-1.0, 1.0}
    max_lag = int(np.ceil(SYNC_OFFSET_RANGE[1] * FPS)) + 1
    for s in offsets:
        assert SYNC_OFFSET_RANGE[0] <= abs(s.sync_offset) <= SYNC_OFFSET_RANGE[1]
        assert s.manifest_row()["sync_fake_method"] == f"offset_{s.sync_offset:+.2f}s"
        lag = best_lag(mouth_track(s), mouth_track(s.as_real()), max_lag)
        assert abs(lag - s.sync_offset * FPS) <= 1, (s.video_name, s.sync_offset * FPS, lag)


@pytest.mark.parametrize("sizes", [(60, 20, 20), (100, 100, 100)])
def test_every_split_has_sync_fakes_and_none_with_a_hard_case(sizes):
    specs = plan_dataset(*sizes, seed=0)
    for split in SPLIT_DIRS:
        sync = [s for s in specs if s.split == split and s.fake_sync]
        assert sync and all(s.hard_case == "" and s.target == 1 for s in sync), split
    assert {s.sync_method for s in specs if s.fake_sync} == set(SYNC_METHODS)
    rows = [s.manifest_row() for s in specs]
    assert all((r["sync_fake_method"] != "") == (r["kind"] == "fake_sync") for r in rows)
    assert {r["sync_fake_method"] for r in rows} >= {"", "other_utterance"}
    assert all(s.sync_method == "" and s.sync_offset == 0 for s in specs if not s.fake_sync)


def test_rerun_is_a_noop_and_a_lost_clip_comes_back_identical(demo, manifest):
    stamps = {p: p.stat().st_mtime_ns for p in demo.rglob("*") if p.is_file()}
    make_demo_dataset(demo, workers=1, **SIZES)
    assert {p: p.stat().st_mtime_ns for p in demo.rglob("*") if p.is_file()} == stamps

    lost = clip(demo, manifest.iloc[5])
    original = lost.read_bytes()
    lost.unlink()
    make_demo_dataset(demo, workers=1, **SIZES)
    assert lost.read_bytes() == original

    with pytest.raises(MmdfError, match="--force"):
        make_demo_dataset(demo, workers=1, **{**SIZES, "seed": 4})


def test_same_seed_same_bytes_in_and_out_of_the_pool(demo, manifest, tmp_path):
    # the fixture was rendered by a process pool; render some clips again here
    specs = plan_dataset(**SIZES)
    rows = pd.DataFrame([s.manifest_row() for s in specs])
    assert rows.to_csv(index=False, lineterminator="\n").encode() == (demo / "manifest.csv").read_bytes()
    for spec in [specs[0], next(s for s in specs if s.kind == "fake_both"), next(s for s in specs if s.hard_case)]:
        make_clip(spec, tmp_path / spec.video_name)
        assert (tmp_path / spec.video_name).read_bytes() == (demo / SPLIT_DIRS[spec.split] / spec.video_name).read_bytes()
    other = plan_dataset(**{**SIZES, "seed": 4})
    assert {s.video_name for s in other}.isdisjoint({s.video_name for s in specs})
    assert [s.kind for s in other] != [s.kind for s in specs]


@pytest.mark.parametrize("sizes", [(300, 100, 100), (16, 8, 4), (12, 8, 8)])
def test_plan_mixes_kinds_and_spreads_hard_cases(sizes):
    specs = plan_dataset(*sizes, seed=0)
    for split, n in zip(("train", "val", "test"), sizes):
        rows = [s for s in specs if s.split == split]
        kinds = Counter(s.kind for s in rows)
        assert all(abs(kinds[k] - n * share) < 1 for k, share in zip(KINDS, (0.4, 0.15, 0.15, 0.15, 0.15), strict=True)), kinds
        hard = Counter(s.hard_case for s in rows if s.hard_case)
        assert set(hard) == (set(HARD_CASES) if n >= 8 else set()), (split, hard)
        assert all(c <= max(1, round(0.04 * n)) for c in hard.values())
        for s in rows:  # a hard case never removes the faked modality
            assert not (s.hard_case in ("no_audio", "silent") and s.fake_audio)
            assert not (s.hard_case == "no_face" and s.fake_video)
            assert not (s.hard_case and s.fake_sync)  # a sync fake needs a talking face, a voice and time
    if sizes[0] >= 100:  # labels spread: each hard case has real and fake clips overall
        for case in HARD_CASES:
            assert {s.target for s in specs if s.hard_case == case} == {0, 1}, case


def test_cli_noop_and_preview(demo, capsys):
    args = ["demo-data", str(demo), "--n-train", "16", "--n-val", "8", "--n-test", "4", "--seed", "3", "--workers", "1", "--preview"]
    assert main(args) == 0
    assert (demo / "preview.png").stat().st_size > 10_000
    assert main(["demo-data", str(demo), "--n-train", "16", "--seed", "9"]) == 2
    assert "--force" in capsys.readouterr().err


def test_force_rebuilds_and_foreign_clips_are_refused(tmp_path):
    out = make_demo_dataset(tmp_path / "tiny", n_train=2, n_val=0, n_test=0, workers=1)
    clips = sorted((out / "trainset").glob("*.mp4"))
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in clips}
    make_demo_dataset(out, n_train=2, n_val=0, n_test=0, workers=1, force=True)
    for p, (data, stamp) in before.items():
        assert p.read_bytes() == data and p.stat().st_mtime_ns != stamp
    assert read_labels(out / "valset_label.txt").empty

    foreign = tmp_path / "foreign"
    (foreign / "trainset").mkdir(parents=True)
    (foreign / "trainset" / "mine.mp4").write_bytes(b"not ours")
    with pytest.raises(MmdfError, match="mine.mp4"):
        make_demo_dataset(foreign, n_train=2, n_val=0, n_test=0, workers=1)
    assert (foreign / "trainset" / "mine.mp4").read_bytes() == b"not ours"


def test_dataset_of_an_older_generator_is_rebuilt(tmp_path):
    out = make_demo_dataset(tmp_path / "old", n_train=2, n_val=0, n_test=0, workers=1)
    marker = out / "demo_data.json"
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "version": FORMAT_VERSION - 1}))
    clip_file = next((out / "trainset").glob("*.mp4"))
    stamp = clip_file.stat().st_mtime_ns
    make_demo_dataset(out, n_train=2, n_val=0, n_test=0, workers=1)
    assert clip_file.stat().st_mtime_ns != stamp and json.loads(marker.read_text())["version"] == FORMAT_VERSION


def test_workers_never_come_from_a_plain_fork(tmp_path, monkeypatch):
    """A plain fork of a process whose threads hold locks (torch's and BLAS's pools, tqdm's monitor) can
    hang its children: the suite once hung in a demo worker's first call after tests that ran MTCNN.
    The demo's workers come from the fork server that `mmdf prepare` uses."""
    import concurrent.futures

    import mmdf.demo.dataset as dataset_mod

    methods = []
    real = concurrent.futures.ProcessPoolExecutor

    def recording(*args, mp_context=None, **kwargs):
        methods.append(mp_context.get_start_method() if mp_context is not None else None)
        return real(*args, mp_context=mp_context, **kwargs)

    monkeypatch.setattr(dataset_mod, "ProcessPoolExecutor", recording)
    make_demo_dataset(tmp_path / "d", n_train=4, n_val=2, n_test=2, seed=5, workers=2)
    assert methods and all(m in ("forkserver", "spawn") for m in methods)
    assert len(list((tmp_path / "d").rglob("*.mp4"))) == 8
