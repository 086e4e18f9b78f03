"""The sync half and branches: a mouth track aligned with its audio, statuses for what is missing, the
sync branches' OOF contract, and (on real media) a shifted voice scored as less in step than the clip.

The aligned clip is made here: the astronaut's face, whose mouth (found by MTCNN's landmarks) is painted
open exactly in the frames where a tone plays; moving the tone by k frames must move the correlation peak
to lag k.
"""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from media_factory import face_frame, make_clip, noise_frame
from train_factory import make_manifest, tiny_config

from mmdf.prepare.clip import ClipTask, _Job, _make_faces, process_clip
from mmdf.prepare.config import PrepareConfig
from mmdf.prepare.faces import FaceDetector
from mmdf.prepare.media import read_window
from mmdf.prepare.mouth import SyncTrack, anchored_places, mouth_places, mouth_track, sync_window
from mmdf.stats.sync import sync_features

FPS, RATE, SIZE = 25, 16000, 256
SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata"


@pytest.fixture(scope="module")
def prepare_cfg() -> PrepareConfig:
    from mmdf.run_config import load_config

    return load_config(None, ["prepare.faces.detect_size=256", "prepare.faces.min_face_size=40"]).prepare


@pytest.fixture(scope="module")
def detector(prepare_cfg) -> FaceDetector:
    return FaceDetector(prepare_cfg.faces)


def speaking(n: int, seed: int = 0) -> np.ndarray:
    """On/off runs of 3-8 frames: when the mouth is open (and the voice sounds)."""
    rng, out, on = np.random.default_rng(seed), [], False
    while len(out) < n:
        out += [on] * int(rng.integers(3, 9))
        on = not on
    return np.array(out[:n])


def talking_clip(path: Path, detector: FaceDetector, shift: int = 0, seconds: float = 3.0) -> Path:
    """The astronaut with her mouth open in the frames of :func:`speaking`, a tone ``shift`` frames later."""
    import av
    import cv2

    face = face_frame(SIZE)
    pts = detector.detect(face[None], landmarks=True)[0].points[0]
    centre, half = pts[3:5].mean(axis=0), float(np.linalg.norm(pts[4] - pts[3])) / 2
    n = int(seconds * FPS)
    open_ = speaking(n)
    voiced = np.roll(open_, shift) & (np.arange(n) >= shift)
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=FPS, options={"crf": "18"})
        v.width = v.height = SIZE
        v.pix_fmt = "yuv420p"
        a = c.add_stream("aac", rate=RATE)
        a.layout = "mono"
        for i in range(n):
            img = face.copy()
            if open_[i]:
                cv2.ellipse(img, (int(centre[0]), int(centre[1])), (int(half), int(half * 0.6)), 0, 0, 360, (20, 5, 5), -1)
            c.mux(v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(v.encode())
        t = np.arange(n * RATE // FPS) / RATE
        tone = (0.4 * np.sin(2 * np.pi * 300 * t) * np.repeat(voiced, RATE // FPS)).astype(np.float32)
        for s in range(0, len(tone), 1024):
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[None, s:s + 1024]), format="flt", layout="mono")
            f.sample_rate, f.pts, f.time_base = RATE, s, Fraction(1, RATE)
            c.mux(a.encode(f))
        c.mux(a.encode())
    return path


def prepared(path: Path, cfg: PrepareConfig, detector: FaceDetector, root: Path):
    return process_clip(ClipTask("val", path.name, str(path), path.stem), cfg, detector, root)


@pytest.mark.parametrize("shift", [0, 4, -6])
def test_the_mouth_track_is_aligned_with_its_audio(tmp_path, prepare_cfg, detector, shift):
    clip = talking_clip(tmp_path / "talk.mp4", detector, shift=shift)
    row = prepared(clip, prepare_cfg, detector, tmp_path / "cache")
    assert row.sync_status == "ok", row.error
    track = SyncTrack.load(tmp_path / "cache" / row.sync_file)
    assert len(track.mouth) == len(track.mel) == len(track.envelope) == len(track.times) == 75
    assert np.allclose(np.diff(track.times), 1 / FPS)
    feats = sync_features(track.arrays())
    assert feats["open_lag"] == shift and feats["open_peak"] > 0.8  # the voice follows the mouth by `shift` frames
    if shift:
        assert feats["open_at0"] < 0.5 * feats["open_peak"]


class CountingDetector:
    """The real detector, counting its calls."""

    def __init__(self, inner: FaceDetector):
        self.inner, self.calls = inner, 0

    def detect(self, *args, **kwargs):
        self.calls += 1
        return self.inner.detect(*args, **kwargs)


def face_half(clip: Path, cfg: PrepareConfig, detector) -> _Job:
    """The face half of ``clip`` alone, as process_clip runs it (its job carries the anchors it leaves)."""
    from mmdf.prepare.media import probe, used_span

    info = probe(clip)
    job = _Job(ClipTask("val", clip.name, str(clip), clip.stem), info, used_span(info.duration, cfg.max_duration),
               cfg, detector, clip.parent / "faces_only")
    assert _make_faces(job).fields["visual_status"] == "ok"
    return job


def test_the_sync_half_places_the_mouth_by_the_face_halfs_landmarks(tmp_path, prepare_cfg, detector):
    """Where the face half's K frames cover the window, the sync half calls no detector of its own; its
    mouth places agree with those MTCNN finds in the window within a few pixels."""
    clip = talking_clip(tmp_path / "talk.mp4", detector)
    alone = CountingDetector(detector)
    job = face_half(clip, prepare_cfg, alone)
    both = CountingDetector(detector)
    row = prepared(clip, prepare_cfg, both, tmp_path / "cache")
    assert row.sync_status == "ok", row.error
    assert both.calls == alone.calls  # the face half's calls only
    frames, times, _ = read_window(clip, *sync_window(job.span, prepare_cfg.sync.window))
    anchored = anchored_places(job.anchors, times, frames.shape[1:3], prepare_cfg.sync)
    own = mouth_places(frames, detector, prepare_cfg.faces, prepare_cfg.sync)
    assert np.abs(anchored - own).max() < 4  # pixels of the 256x256 frames


def test_the_sync_half_detects_where_the_face_half_does_not_cover_its_window(tmp_path, prepare_cfg, detector):
    """Too few of the face half's frames in the window (K frames seconds apart in a long clip), or none
    (a face half lent by another cache): the sync half looks at ``detect_frames`` frames itself."""
    clip = talking_clip(tmp_path / "long.mp4", detector, seconds=8.0)
    sparse = dataclasses.replace(prepare_cfg, faces=dataclasses.replace(prepare_cfg.faces, num_frames=4))
    alone = CountingDetector(detector)
    face_half(clip, sparse, alone)  # frames at 0, 2.6, 5.3, 8 s: two within 1.5-6.5 s
    both = CountingDetector(detector)
    row = prepared(clip, sparse, both, tmp_path / "cache")
    assert row.sync_status == "ok", row.error
    assert both.calls == alone.calls + 1  # one MTCNN call on the window's detect_frames frames
    counted = CountingDetector(detector)
    track = mouth_track(clip, (0.0, 8.0), prepare_cfg.sync, prepare_cfg.faces, counted, anchors=None)
    assert counted.calls == 1 and len(track.mouth) == 100


def test_the_sync_features_are_keyed_by_the_face_settings_too():
    """The mouth is placed by the face half's landmarks: its settings key the sync statistics, and the
    sync half's version keys the cache (features of the earlier sync half are not reused)."""
    from mmdf.prepare.cache import SYNC_VERSION, feature_params
    from mmdf.stats.table import feature_function

    cfg = PrepareConfig()
    other = dataclasses.replace(cfg, faces=dataclasses.replace(cfg.faces, num_frames=8))
    assert feature_function("sync", cfg)[2] != feature_function("sync", other)[2]
    assert feature_params(cfg)["sync_version"] == SYNC_VERSION >= 2


def test_missing_modalities_have_their_status(tmp_path, prepare_cfg, detector):
    import av

    cases = {"mute": make_clip(tmp_path / "mute.mp4", duration=2.0, audio=None),
             "faceless": make_clip(tmp_path / "faceless.mp4", duration=2.0, face=False),
             "short": make_clip(tmp_path / "short.mp4", duration=0.6)}
    with av.open(str(tmp_path / "voice.m4a"), "w", format="mp4") as c:  # audio only
        a = c.add_stream("aac", rate=RATE)
        a.layout = "mono"
        f = av.AudioFrame.from_ndarray(np.zeros((1, RATE), np.float32), format="flt", layout="mono")
        f.sample_rate, f.pts, f.time_base = RATE, 0, Fraction(1, RATE)
        c.mux(a.encode(f))
        c.mux(a.encode())
    cases["voice_only"] = tmp_path / "voice.m4a"
    got = {k: prepared(p, prepare_cfg, detector, tmp_path / "cache") for k, p in cases.items()}
    assert {k: r.sync_status for k, r in got.items()} == {
        "mute": "no_audio", "faceless": "no_face", "short": "too_short", "voice_only": "no_video"}
    assert all(r.sync_file == "" for r in got.values())
    assert got["faceless"].status == "no_face" and "sync: no face" in got["faceless"].error


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from mmdf.train.kfold import train_branch

    tmp = tmp_path_factory.mktemp("sync_train")
    manifest = make_manifest(tmp)
    cfg = tiny_config(tmp, extra=["train.epochs=3"])
    return cfg, manifest, {b: train_branch(cfg, b, manifest=manifest) for b in ("sync", "sync_stats")}


@pytest.mark.parametrize("name", ["sync", "sync_stats"])
def test_sync_branches_score_every_train_clip_out_of_fold_once(trained, name):
    from mmdf.data.folds import check_folds

    cfg, manifest, out = trained
    oof = pd.read_csv(out[name] / "oof.csv")
    train = manifest[manifest["split"] == "train"]
    assert sorted(oof["video_name"]) == sorted(train["video_name"])
    check_folds(oof)
    per_fold = pd.concat(pd.read_csv(out[name] / f"fold_{k}" / "predictions.csv") for k in range(2))
    held = per_fold[per_fold["split"] == "train"]
    assert not held["video_name"].duplicated().any()
    missing = oof["status"] != "ok"
    assert missing.sum() == 4 and oof.loc[missing, "prob"].isna().all()  # no audio, no face: NaN with status
    assert set(oof.loc[missing, "status"]) == {"no_audio", "no_face"}
    assert oof.loc[~missing, "prob"].between(0, 1).all()
    metrics = json.loads((out[name] / "metrics.json").read_text())
    assert metrics["oof"]["auc"] > 0.8  # the synthetic fakes' mouths follow another voice


def test_the_sync_network_learns_from_real_clips_only(trained, monkeypatch):
    """Its training items are windows of real clips: a fold's fakes are never read while it learns."""
    from mmdf.train.branches import get_branch

    cfg, manifest, _ = trained
    branch = get_branch("sync")
    fit = manifest[(manifest["split"] == "train") & (manifest["sync_status"] == "ok")]
    rows = branch.training_rows(fit)
    assert (rows["target"] == 0).all() and len(rows) == (fit["target"] == 0).sum()
    ds = branch.dataset(rows, branch.section(cfg.train), [0.0], [1.0], train=True)
    labels = np.array([float(ds[i][1]) for i in range(len(ds))])
    assert set(np.unique(labels)) == {0.0, 1.0}  # in and out of sync, made from real clips


def _realdata_talking_clips() -> list[Path]:
    return [p for p in (SHARED / "dfdc_real_lynaeydofd.mp4", SHARED / "dfdc_fake_brtujopkby_portrait.mp4")
            if p.is_file()]


@pytest.mark.skipif(not _realdata_talking_clips(), reason="../shared/realdata (DFDC talking clips) not present")
def test_a_real_clip_with_its_voice_moved_scores_out_of_sync(tmp_path):
    """The self-supervision's own claim, on media nobody here made: the sync network, taught on the clips as
    they are (their own windows in step; audio moved by 8+ frames out of step), scores the same clips
    re-muxed with the audio 0.5 s and 1 s late (the container's timestamps, not the samples, move) as
    further out of sync than the clips as they are."""
    import torch

    from mmdf.audit.media import ffmpeg
    from mmdf.train.branches.sync import BRANCH, SyncBranchConfig

    cfg = PrepareConfig()  # the full-size settings: small faces in 1080p frames
    detector = FaceDetector(cfg.faces)
    files = {}
    for clip in _realdata_talking_clips():
        for delay in (0.0, 0.5, 1.0):
            moved = tmp_path / f"{clip.stem}_{delay}.mp4"
            ffmpeg(["-i", str(clip), "-itsoffset", f"{delay}", "-i", str(clip), "-map", "0:v:0", "-map", "1:a:0",
                    "-c", "copy", "-f", "mp4", str(moved)])
            row = prepared(moved, cfg, detector, tmp_path / "cache")
            assert row.sync_status == "ok", row.error
            files[clip.name, delay] = str(tmp_path / "cache" / row.sync_file)
    section = SyncBranchConfig(pairs_per_clip=64, eval_windows=8)
    torch.manual_seed(0)
    net = BRANCH.create_model(section.model, cfg)
    as_is = [files[c.name, 0.0] for c in _realdata_talking_clips()]
    train = BRANCH.dataset(pd.DataFrame({"sync_file": as_is, "target": 0}), section, [0.0], [1.0], train=True)
    opt = torch.optim.AdamW(net.parameters(), 3e-3)
    for _ in range(8):
        for x, y, _ in torch.utils.data.DataLoader(train, batch_size=32, shuffle=True):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x).squeeze(1), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    for clip in _realdata_talking_clips():
        score = {}
        for delay in (0.0, 0.5, 1.0):
            ds = BRANCH.dataset(pd.DataFrame({"sync_file": [files[clip.name, delay]], "target": 0}), section,
                                [0.0], [1.0], train=False)
            with torch.no_grad():
                score[delay] = float(torch.stack([net(ds[i][0][None]).squeeze() for i in range(len(ds))]).mean())
        assert score[0.5] > score[0.0] and score[1.0] > score[0.0], (clip.name, score)
