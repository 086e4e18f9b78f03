"""The perturbations of the audit: one small function each, registered by name in ``PERTURBATIONS``.

Each takes a source clip and writes the perturbed clip to ``dst`` (atomically,
with the bundled ffmpeg), touching only what it names: the video ones copy the
audio stream, the audio ones copy the video stream. Where an edit needs both
streams rewritten (resizing, frame rate, trimming, padding), the untouched side is
re-encoded at a near-transparent quality (H.264 CRF 18, AAC at the source's bit
rate), lighter than the ``crf23`` row, so that row bounds what the re-encode
alone costs. A perturbation that does not apply to a clip (an audio one on a clip
without audio, trimming a clip with no silence) raises :class:`Unchanged`: the
clip is scored as it is.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from mmdf.audit.media import NO_AUDIO, ClipInfo, PerturbError, decode_native_audio, ffmpeg, probe_clip
from mmdf.audit.silence import FRAME_S, sound_span
from mmdf.files import atomic_write

TRANSPARENT_CRF = 18
PRESET = "veryfast"
DEFAULT_AUDIO_BITRATE = 128_000
NOISE_SNR_DB = 20.0
PAD_SECONDS = 1.0
MAPS = ["-map", "0:v:0?", "-map", "0:a:0?"]


class Unchanged(Exception):
    """The perturbation does not apply to this clip; the message says why."""


def _video(crf: int = TRANSPARENT_CRF) -> list[str]:
    return ["-c:v", "libx264", "-preset", PRESET, "-crf", str(crf), "-pix_fmt", "yuv420p"]


def _audio(info: ClipInfo, bitrate: float | None = None) -> list[str]:
    """AAC at ``bitrate``, else at the source's own bit rate."""
    return ["-c:a", "aac", "-b:a", str(int(bitrate or info.audio_bitrate or DEFAULT_AUDIO_BITRATE))]


def _write(dst: Path, args: list[str], stdin: bytes | None = None) -> None:
    """Run ffmpeg with ``args`` (inputs, maps, codecs) into ``dst``, atomically."""
    with atomic_write(dst) as tmp:
        ffmpeg([*args, "-threads", "1", "-f", "mp4", str(tmp)], stdin=stdin)


def _with_video(src: Path) -> ClipInfo:
    info = probe_clip(src)
    if not info.has_video:
        raise Unchanged("no video stream")
    return info


def _with_audio(src: Path) -> ClipInfo:
    info = probe_clip(src)
    if not info.has_audio:
        raise Unchanged(NO_AUDIO)
    return info


def _reencode_video(src: Path, dst: Path, crf: int, filters: str | None = None) -> None:
    """Video through libx264 at ``crf`` (after ``filters``), audio copied."""
    _with_video(src)
    vf = ["-vf", filters] if filters else []
    _write(dst, ["-i", str(src), *MAPS, *vf, *_video(crf), "-c:a", "copy"])


def _reencode_audio(src: Path, dst: Path, rate: int | None = None, bitrate: float | None = None) -> None:
    """Audio through AAC (resampled to ``rate`` / at ``bitrate`` where given), video copied."""
    info = _with_audio(src)
    ar = ["-ar", str(rate)] if rate else []
    _write(dst, ["-i", str(src), *MAPS, "-c:v", "copy", *_audio(info, bitrate), *ar])


def crf23(src: Path, dst: Path) -> None:
    """Video re-encoded with H.264 at CRF 23 (the x264 default; a typical upload)."""
    _reencode_video(src, dst, 23)


def crf32(src: Path, dst: Path) -> None:
    """Video re-encoded with H.264 at CRF 32 (visibly compressed)."""
    _reencode_video(src, dst, 32)


def crf40(src: Path, dst: Path) -> None:
    """Video re-encoded with H.264 at CRF 40 (heavily compressed, blocky)."""
    _reencode_video(src, dst, 40)


def half_resolution(src: Path, dst: Path) -> None:
    """Video downscaled to half its width and height (area filter, even sizes)."""
    _reencode_video(src, dst, TRANSPARENT_CRF, "scale=trunc(iw/4)*2:trunc(ih/4)*2:flags=area")


def half_frame_rate(src: Path, dst: Path) -> None:
    """Video frame rate halved (every other frame dropped), same duration."""
    fps = _with_video(src).fps
    if not fps:
        raise PerturbError("the video stream declares no frame rate")
    half = fps / 2
    _reencode_video(src, dst, TRANSPARENT_CRF, f"fps={half.numerator}/{half.denominator}")


def resample_16k(src: Path, dst: Path) -> None:
    """Audio resampled to 16 kHz (wide-band telephony, many TTS vocoders)."""
    _reencode_audio(src, dst, rate=16_000)


def resample_8k(src: Path, dst: Path) -> None:
    """Audio resampled to 8 kHz (narrow-band telephony)."""
    _reencode_audio(src, dst, rate=8_000)


def aac_32k(src: Path, dst: Path) -> None:
    """Audio re-encoded as AAC at 32 kbit/s."""
    _reencode_audio(src, dst, bitrate=32_000)


def white_noise_20db(src: Path, dst: Path) -> None:
    """White Gaussian noise added to the audio at 20 dB SNR (against the whole track's power)."""
    info = _with_audio(src)
    signal, rate = decode_native_audio(src, mono=False)
    power = float(np.mean(signal.astype(np.float64) ** 2)) if signal.size else 0.0
    if power <= 0:
        raise Unchanged("silent audio track (no signal to set the noise against)")
    rng = np.random.default_rng(zlib.crc32(src.name.encode()))  # the same noise on every run
    noise = rng.standard_normal(signal.shape) * np.sqrt(power / 10 ** (NOISE_SNR_DB / 10))
    noisy = np.clip(signal + noise, -1, 1).astype("<f4")
    raw = ["-f", "f32le", "-ar", str(rate), "-ac", str(len(signal)), "-i", "pipe:0"]
    _write(dst, ["-i", str(src), *raw, "-map", "0:v:0?", "-map", "1:a:0", "-c:v", "copy", *_audio(info)],
           stdin=noisy.T.tobytes())


def trim_silence(src: Path, dst: Path) -> None:
    """Leading and trailing silence cut from both streams (see mmdf.audit.silence)."""
    info = _with_audio(src)
    signal, rate = decode_native_audio(src)
    span = sound_span(signal, rate)
    if span is None:
        raise Unchanged("silent audio track (nothing but silence to trim)")
    start, end = span
    if start < FRAME_S and signal.shape[1] / rate - end < FRAME_S:
        raise Unchanged("no leading or trailing silence")
    cut = ["-ss", f"{start:.3f}", "-t", f"{end - start:.3f}"]
    _write(dst, [*cut, "-i", str(src), *MAPS, *_video(), *_audio(info)])


def add_leading_silence(src: Path, dst: Path) -> None:
    """1 s of silence added at the start; the video holds its first frame for that second."""
    info = _with_audio(src)
    graph, maps = [f"[0:a:0]adelay=delays={int(PAD_SECONDS * 1000)}:all=1[a]"], ["-map", "[a]"]
    if info.has_video:
        graph.insert(0, f"[0:v:0]tpad=start_duration={PAD_SECONDS}:start_mode=clone[v]")
        maps = ["-map", "[v]", *maps, *_video()]
    _write(dst, ["-i", str(src), "-filter_complex", ";".join(graph), *maps, *_audio(info)])


PERTURBATIONS: dict[str, Callable[[Path, Path], None]] = {
    "crf23": crf23,
    "crf32": crf32,
    "crf40": crf40,
    "half_res": half_resolution,
    "half_fps": half_frame_rate,
    "audio_16k": resample_16k,
    "audio_8k": resample_8k,
    "aac_32k": aac_32k,
    "noise_20db": white_noise_20db,
    "trim_silence": trim_silence,
    "lead_silence_1s": add_leading_silence,
}


def describe(name: str) -> str:
    """The first line of a perturbation's docstring: what it does, for the report."""
    return (PERTURBATIONS[name].__doc__ or name).strip().splitlines()[0]


def apply_perturbation(name: str, src: str | Path, dst: str | Path) -> tuple[str, str]:
    """(status, note) of perturbing one clip: ``ok``, ``unchanged`` (why) or ``failed`` (the error).

    An existing ``dst`` is a finished earlier run's (writes are atomic) and is kept.
    Never raises for a bad clip: one clip's failure must not stop the audit.
    """
    src, dst = Path(src), Path(dst)
    if dst.is_file():
        return "ok", ""
    try:
        PERTURBATIONS[name](src, dst)
    except Unchanged as why:
        return "unchanged", str(why)
    except Exception as exc:  # noqa: BLE001 - any decoder/encoder error is this clip's status
        return "failed", f"{type(exc).__name__}: {exc}"
    return "ok", ""
