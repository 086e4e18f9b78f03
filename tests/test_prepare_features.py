"""Features of single clips: mel parity with the reference route, frame sampling, face crops."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from media_factory import make_clip
from mmdf.prepare.audio import mel_image, prepare_clip_audio
from mmdf.prepare.config import FaceConfig, MelConfig
from mmdf.prepare.faces import Detection, FaceDetector, box_iou, crop_face, prepare_clip_faces, track_main_face
from mmdf.prepare.media import MediaError, probe, read_frames, read_frames_decord, sample_indices


def _bench_prepare():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_prepare.py"
    spec = importlib.util.spec_from_file_location("bench_prepare", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference_mel = _bench_prepare().reference_mel  # the notebook's route, verbatim: moviepy -> WAV -> librosa


@pytest.mark.parametrize("name", ["street_faces_1080p.mp4", "dfdc_real_lynaeydofd.mp4", "dfdc_fake_brtujopkby_portrait.mp4"])
def test_mel_matches_reference_route(realdata, tmp_path, name):
    """48 kHz stereo, 48 kHz mono and 44.1 kHz mono AAC; audio shorter than the container."""
    ours = prepare_clip_audio(realdata / name)
    ref = reference_mel(realdata / name)
    assert ours.dtype == np.uint8 and ours.shape == (256, 256)
    assert np.abs(ours.astype(int) - ref.astype(int)).mean() <= 4.0


def test_mel_matches_reference_route_at_22khz(tmp_path):
    """A 22.05 kHz track (as the demo clips have): the reference's 44.1 kHz round trip low-passes it."""
    clip = make_clip(tmp_path / "a.mp4", duration=2.0, sample_rate=22050)
    ours = prepare_clip_audio(clip)
    ref = reference_mel(clip)
    assert np.abs(ours.astype(int) - ref.astype(int)).mean() <= 4.0


def test_mel_writes_no_temporary_files(realdata, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    prepare_clip_audio(realdata / "street_faces_1080p.mp4")
    assert list(tmp_path.iterdir()) == []


def test_mel_parameters_and_silence():
    cfg = MelConfig(n_mels=64, image_size=96)
    rng = np.random.default_rng(0)
    image = mel_image(rng.standard_normal(22050).astype(np.float32), cfg)
    assert image.shape == (96, 96) and image.dtype == np.uint8 and image.max() > 200 and image.min() < 50
    silent = mel_image(np.zeros(22050, np.float32), cfg)
    assert silent.shape == (96, 96) and not silent.any()
    constant = mel_image(np.full(22050, 0.5, np.float32), cfg)
    assert np.isfinite(constant).all()


def test_audio_errors(tmp_path, realdata):
    with pytest.raises(MediaError) as info:
        prepare_clip_audio(make_clip(tmp_path / "mute.mp4", duration=1.0, audio=None))
    assert info.value.status == "no_audio"
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(MediaError) as info:
        probe(empty)
    assert info.value.status == "corrupt" and "0 bytes" in str(info.value)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(5000))
    with pytest.raises(MediaError, match="cannot open"):
        probe(garbage)


def test_sample_indices_spread():
    assert list(sample_indices(105, 16))[:3] == [0, 7, 14] and sample_indices(105, 16)[-1] == 104
    assert list(sample_indices(5, 16)) == [0, 1, 2, 3, 4]
    assert len(sample_indices(0, 16)) == 0


def test_frames_by_seeking_match_decord(tmp_path, realdata):
    clip = make_clip(tmp_path / "gop.mp4", duration=3.0)  # key frame every 10 frames: seeks
    for path in (clip, realdata / "street_faces_1080p.mp4"):
        exact, exact_idx = read_frames(path, 16, skip_nonref=False)
        ref, ref_idx = read_frames_decord(path, 16)
        assert np.array_equal(exact_idx, ref_idx) and np.array_equal(exact, ref)
        fast, fast_idx = read_frames(path, 16)
        assert len(fast_idx) == 16 and np.abs(fast_idx - ref_idx).max() <= 2


def test_corrupt_video_is_reported(realdata):
    with pytest.raises(MediaError) as info:
        read_frames(realdata / "corrupted.mp4", 16)
    assert info.value.status == "corrupt"


def test_tracking_keeps_the_same_person():
    """A somewhat larger passer-by in one frame does not replace the face seen throughout."""
    person = np.array([[100, 100, 160, 170]], np.float32)
    passer = np.array([[400, 50, 480, 140]], np.float32)
    dets = [Detection(person + 3 * t, np.array([0.99], np.float32)) for t in range(5)]
    dets[2] = Detection(np.concatenate([passer, person + 6]), np.array([0.999, 0.98], np.float32))
    dets[4] = Detection(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
    track = track_main_face(dets, min_confidence=0.9, track_iou=0.2)
    assert track[4] is None
    for t in range(4):
        assert box_iou(track[t][0], person + 3 * t)[0] > 0.8


def test_crop_margin_and_padding():
    frame = np.full((100, 200, 3), 200, np.uint8)
    crop = crop_face(frame, np.array([0, 0, 40, 40], np.float32), margin=0.5, size=32)
    assert crop.shape == (32, 32, 3)
    assert crop[0, 0].max() == 0 and crop[-1, -1].min() == 200  # outside the frame is black


@pytest.fixture(scope="module")
def detector():
    import torch

    torch.set_num_threads(1)
    return FaceDetector(FaceConfig(detect_size=480, min_face_size=30))


def test_face_crops_of_a_talking_head(tmp_path, detector):
    cfg = FaceConfig(num_frames=8, crop_size=48, detect_size=480, min_face_size=30)
    result = prepare_clip_faces(make_clip(tmp_path / "face.mp4", duration=2.0), cfg, detector)
    assert result.crops.shape == (8, 48, 48, 3) and result.crops.dtype == np.uint8
    assert result.frames_sampled == 8 and result.frames_with_face == 8 and result.conf_mean > 0.95
    none = prepare_clip_faces(make_clip(tmp_path / "noface.mp4", duration=2.0, face=False), cfg, detector)
    assert none.frames_with_face == 0 and none.crops.shape == (0, 48, 48, 3) and np.isnan(none.conf_mean)


def test_main_face_of_1080p_street_matches_full_detection(realdata, detector):
    """Key-frame detection at reduced scale finds the same face as detecting every frame."""
    path = realdata / "street_faces_1080p.mp4"
    frames, indices = read_frames(path, 8)
    from mmdf.prepare.faces import faces_from_frames

    fast_cfg = FaceConfig(num_frames=8, crop_size=48, detect_size=640, min_face_size=32, detect_every=4)
    full_cfg = FaceConfig(num_frames=8, crop_size=48, detect_size=960, min_face_size=20, detect_every=1)
    fast = faces_from_frames(frames, indices, FaceDetector(fast_cfg), fast_cfg)
    full = faces_from_frames(frames, indices, FaceDetector(full_cfg), full_cfg)
    assert fast.frames_with_face >= 2
    common = set(fast.frame_indices) & set(full.frame_indices)
    assert common
    for i in common:
        a = fast.boxes[list(fast.frame_indices).index(i)]
        b = full.boxes[list(full.frame_indices).index(i)]
        assert box_iou(a, b[None])[0] > 0.5


class CountingDetector:
    """A stand-in detector: one face per frame at a scripted box; counts frames it is asked about."""

    def __init__(self, boxes):
        self.boxes = boxes  # per frame index: (4,) box in frame pixels
        self.frames_seen = 0
        self.roi_calls = 0

    def detect(self, frames, downscale=True, landmarks=False):
        self.frames_seen += len(frames)
        if not downscale:  # region-of-interest pass: the face sits in the middle of each region
            self.roi_calls += 1
            s = frames.shape[1]
            box = np.array([[s * 0.25, s * 0.25, s * 0.75, s * 0.75]], np.float32)
            return [Detection(box, np.array([0.99], np.float32)) for _ in frames]
        out = []
        for f in frames:
            i = int(f[0, 0, 0])  # frames carry their index in the first pixel
            out.append(Detection(self.boxes[i][None].astype(np.float32), np.array([0.99], np.float32)))
        return out


def _landmarks_of(boxes: np.ndarray) -> np.ndarray:
    """(n, 5, 2) points at fixed places of each box (n, 4): a linear function of the box."""
    share = np.array([[0.3, 0.35], [0.7, 0.35], [0.5, 0.55], [0.35, 0.75], [0.65, 0.75]], np.float32)
    return boxes[:, None, :2] + share[None] * (boxes[:, None, 2:] - boxes[:, None, :2])


class LandmarkDetector(CountingDetector):
    """A :class:`CountingDetector` that gives MTCNN's five points when asked, as the real one does."""

    def detect(self, frames, downscale=True, landmarks=False):
        found = super().detect(frames, downscale)
        return [Detection(d.boxes, d.probs, _landmarks_of(d.boxes) if landmarks else None) for d in found]


def _indexed_frames(n):
    frames = np.zeros((n, 64, 64, 3), np.uint8)
    frames[:, 0, 0, 0] = np.arange(n)
    return frames


def test_steady_face_is_interpolated_without_detection():
    from mmdf.prepare.faces import find_main_face

    boxes = [np.array([20 + t * 0.2, 20, 40 + t * 0.2, 40], np.float32) for t in range(9)]  # barely moves
    det = CountingDetector(boxes)
    cfg = FaceConfig(detect_every=4, interpolate_iou=0.6)
    track = find_main_face(_indexed_frames(9), det, cfg)
    assert det.roi_calls == 0 and det.frames_seen == 3  # key frames 0, 4, 8 only
    assert all(hit is not None for hit in track)
    np.testing.assert_allclose(track[2][0], boxes[2], atol=1e-4)  # linear motion: exact interpolation


def test_moving_face_is_verified_between_key_frames():
    from mmdf.prepare.faces import find_main_face

    boxes = [np.array([2 + t * 3, 10, 22 + t * 3, 30], np.float32) for t in range(9)]  # key boxes barely overlap
    det = CountingDetector(boxes)
    track = find_main_face(_indexed_frames(9), det, FaceConfig(detect_every=4, interpolate_iou=0.6))
    assert det.roi_calls == 1 and det.frames_seen == 3 + 6  # the 6 frames between keys are checked
    assert all(hit is not None for hit in track)
    always = CountingDetector(boxes[:1] * 9)
    find_main_face(_indexed_frames(9), always, FaceConfig(detect_every=4, interpolate_iou=1.01))
    assert always.roi_calls == 1  # interpolate_iou > 1: never trust interpolation


@pytest.mark.parametrize("moves", [0.2, 3.0])
def test_landmarks_follow_the_main_face(moves):
    """Key frames' points as detected, steady frames' interpolated, region frames' mapped back to the frame:
    wherever the box is, the points sit where they belong on it (the sync half places the mouth by them)."""
    from mmdf.prepare.faces import faces_from_frames

    boxes = [np.array([2 + t * moves, 10, 22 + t * moves, 30], np.float32) for t in range(9)]
    det = LandmarkDetector(boxes)
    result = faces_from_frames(_indexed_frames(9), np.arange(9), det, FaceConfig(detect_every=4, crop_size=16))
    assert (det.roi_calls > 0) == (moves > 1) and result.points.shape == (9, 5, 2)
    np.testing.assert_allclose(result.points, _landmarks_of(result.boxes), atol=1e-3)
