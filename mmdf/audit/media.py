"""Reading a clip's properties and audio with PyAV, and running the bundled ffmpeg.

The audit edits clips with the ffmpeg binary that imageio-ffmpeg ships (the same
build on every machine, libx264 and AAC included) and reads them back with PyAV,
so a perturbation is checked by a different reader than the one that wrote it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

NO_AUDIO = "no audio track"


class PerturbError(Exception):
    """ffmpeg (or a decoder) failed on one clip; becomes a ``failed`` status row."""


@dataclass
class ClipInfo:
    """What the container says about a clip; the cheap cues of the shortcut probes."""

    duration: float  # seconds, the container's (longest stream)
    bitrate: float | None  # bit/s of the whole file
    width: int | None
    height: int | None
    fps: Fraction | None  # average frame rate
    video_bitrate: float | None
    sample_rate: int | None
    channels: int | None
    audio_bitrate: float | None

    @property
    def has_audio(self) -> bool:
        return self.sample_rate is not None

    @property
    def has_video(self) -> bool:
        return self.width is not None


def probe_clip(path: str | Path) -> ClipInfo:
    """Container and stream properties, read without decoding (PyAV)."""
    import av

    path = Path(path)
    with av.open(str(path)) as container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        duration = float(container.duration) / 1e6 if container.duration else 0.0
        bitrate = container.bit_rate or (path.stat().st_size * 8 / duration if duration else None)
        fps = video.average_rate if video is not None else None
        return ClipInfo(
            duration=duration, bitrate=float(bitrate) if bitrate else None,
            width=video.codec_context.width if video is not None else None,
            height=video.codec_context.height if video is not None else None,
            fps=Fraction(fps) if fps else None,
            video_bitrate=float(video.bit_rate) if video is not None and video.bit_rate else None,
            sample_rate=audio.codec_context.sample_rate if audio is not None else None,
            channels=audio.codec_context.channels if audio is not None else None,
            audio_bitrate=float(audio.bit_rate) if audio is not None and audio.bit_rate else None,
        )


def decode_native_audio(path: str | Path, mono: bool = True) -> tuple[np.ndarray, int]:
    """The whole audio track as float32 ``(channels, samples)`` (one channel with ``mono``) at its own rate.

    Not :func:`mmdf.prepare.media.decode_audio`, which gives what the features are
    made from (mono, the recipe's rate, the used span): perturbations keep the
    source's rate and channels, and the probes measure the file as it is. Raises :class:`PerturbError` for a clip without audio.
    """
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise PerturbError(NO_AUDIO)
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        layout = "mono" if mono else stream.codec_context.layout.name
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        chunks = []
        for frame in container.decode(stream):
            chunks += [f.to_ndarray() for f in resampler.resample(frame)]
        chunks += [f.to_ndarray() for f in resampler.resample(None)]
    channels = 1 if mono else len(stream.codec_context.layout.channels)
    signal = np.concatenate(chunks, axis=1) if chunks else np.zeros((channels, 0), np.float32)
    return signal.astype(np.float32, copy=False), rate


def ffmpeg(args: list[str], stdin: bytes | None = None, timeout: float = 600) -> None:
    """Run the bundled ffmpeg quietly on one thread; a failure raises with ffmpeg's last words."""
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), *(["-nostdin"] if stdin is None else []),
           "-hide_banner", "-loglevel", "error", "-y", "-filter_threads", "1", *args]
    try:
        done = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise PerturbError(f"ffmpeg ran past {timeout:.0f} s") from None
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise PerturbError("ffmpeg failed: " + " | ".join(tail))
