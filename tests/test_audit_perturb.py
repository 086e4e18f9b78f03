"""Each perturbation of `mmdf audit` does what its name says, on clips the test makes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmdf.audit.media import decode_native_audio, probe_clip
from mmdf.audit.perturb import PERTURBATIONS, apply_perturbation, describe
from mmdf.audit.silence import leading_silence, sound_span

FPS, RATE, SECONDS, LEAD, TAIL = 25, 44100, 2.0, 0.5, 0.3


def make_av_clip(path: Path, seconds: float = SECONDS, lead: float = LEAD, tail: float = TAIL,
                 audio: bool = True, size: int = 128, seed: int = 0) -> Path:
    """Noise frames (so bit rates mean something) and a noisy tone with ``lead`` / ``tail`` s of silence."""
    from mmdf.demo.encode import write_mp4

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (int(seconds * FPS), size // 8, size // 8, 3), dtype=np.uint8)
    frames = [np.kron(f, np.ones((8, 8, 1), np.uint8)) for f in small]
    t = np.arange(int(seconds * RATE)) / RATE
    sound = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
    sound[: int(lead * RATE)] = 0
    sound[len(sound) - int(tail * RATE):] = 0
    write_mp4(path, frames, FPS, sound if audio else None, RATE)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("perturb")
    src = make_av_clip(folder / "src.mp4")
    mute = make_av_clip(folder / "mute.mp4", audio=False)
    out = {"src": src, "mute": mute}
    for name in PERTURBATIONS:
        out[name] = folder / name / "src.mp4"
        assert apply_perturbation(name, src, out[name]) == ("ok", ""), name
    return out


def test_reencoding_lowers_the_video_bitrate(clips):
    rates = [probe_clip(clips[n]).video_bitrate for n in ("src", "crf23", "crf32", "crf40")]
    assert rates == sorted(rates, reverse=True) and rates[-1] < 0.5 * rates[0], rates
    assert probe_clip(clips["crf40"]).audio_bitrate == probe_clip(clips["src"]).audio_bitrate  # audio copied


def test_half_resolution_and_half_frame_rate(clips):
    half = probe_clip(clips["half_res"])
    assert (half.width, half.height) == (64, 64)
    slow = probe_clip(clips["half_fps"])
    assert float(slow.fps) == pytest.approx(FPS / 2)
    assert slow.duration == pytest.approx(SECONDS, abs=0.1)


@pytest.mark.parametrize("name, rate", [("audio_16k", 16000), ("audio_8k", 8000)])
def test_resampled_audio_has_the_new_rate(clips, name, rate):
    assert probe_clip(clips[name]).sample_rate == rate
    signal, got = decode_native_audio(clips[name])
    assert got == rate and signal.shape[1] == pytest.approx(SECONDS * rate, rel=0.03)
    assert probe_clip(clips[name]).video_bitrate == probe_clip(clips["src"]).video_bitrate  # video copied


def test_aac_32k_lowers_the_audio_bitrate(clips):
    assert probe_clip(clips["src"]).audio_bitrate > 40_000
    assert probe_clip(clips["aac_32k"]).audio_bitrate <= 33_000


def test_white_noise_is_20_db_below_the_signal(clips):
    clean, rate = decode_native_audio(clips["src"])
    noisy, _ = decode_native_audio(clips["noise_20db"])
    power = np.mean(clean.astype(float) ** 2)
    in_silence = noisy[0, int(0.05 * rate): int((LEAD - 0.05) * rate)]  # only noise there
    snr = 10 * np.log10(power / np.mean(in_silence.astype(float) ** 2))
    assert snr == pytest.approx(20, abs=1.5)


def test_trimming_removes_the_silence(clips):
    before, after = probe_clip(clips["src"]), probe_clip(clips["trim_silence"])
    assert before.duration - after.duration == pytest.approx(LEAD + TAIL, abs=0.1)
    signal, rate = decode_native_audio(clips["trim_silence"])
    start, end = sound_span(signal, rate)
    assert start < 0.05 and signal.shape[1] / rate - end < 0.1


def test_added_silence_makes_the_clip_one_second_longer(clips):
    before, after = probe_clip(clips["src"]), probe_clip(clips["lead_silence_1s"])
    assert after.duration - before.duration == pytest.approx(1.0, abs=0.1)
    signal, rate = decode_native_audio(clips["lead_silence_1s"])
    assert leading_silence(signal, rate) == pytest.approx(LEAD + 1.0, abs=0.06)
    assert after.fps == before.fps  # the video held its first frame, at the same rate


def test_a_clip_without_audio_passes_audio_perturbations_through(clips, tmp_path):
    for name in PERTURBATIONS:
        dst = tmp_path / name / "mute.mp4"
        status, note = apply_perturbation(name, clips["mute"], dst)
        audio_only = name in ("audio_16k", "audio_8k", "aac_32k", "noise_20db", "trim_silence", "lead_silence_1s")
        assert (status, note) == (("unchanged", "no audio track") if audio_only else ("ok", "")), name
        assert dst.is_file() != audio_only


def test_a_broken_clip_is_a_status_not_an_exception(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    for name in PERTURBATIONS:
        status, note = apply_perturbation(name, bad, tmp_path / name / "bad.mp4")
        assert status == "failed" and note, name
        assert not (tmp_path / name / "bad.mp4").exists()
    assert describe("crf40").startswith("Video re-encoded")


def test_silence_detection_on_a_known_signal():
    rate = 1000
    signal = np.zeros(2 * rate)
    signal[300:1500] = np.sin(np.arange(1200))
    assert sound_span(signal, rate) == pytest.approx((0.3, 1.5), abs=0.021)
    assert leading_silence(np.zeros(rate), rate) == 1.0
    assert sound_span(np.zeros(rate), rate) is None
