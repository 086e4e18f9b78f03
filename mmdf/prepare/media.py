"""Decoding clips in memory: the audio track with PyAV, sampled frames with decord.

No temporary files and no subprocesses: the audio is decoded straight from the
container and sampled frames are reached by seeking, so the cost of a clip is
its audio plus K frames, not its whole video stream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class MediaError(Exception):
    """A clip that cannot be decoded; ``status`` is the manifest status it earns."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class StreamInfo:
    """What the container says about a clip, read without decoding it."""

    duration: float  # seconds, the longer of the streams (container duration as fallback)
    has_audio: bool
    has_video: bool
    audio_duration: float
    video_duration: float


def _stream_seconds(stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return 0.0


def probe(path: str | Path) -> StreamInfo:
    """Open the container and read stream durations; raises :class:`MediaError` ('corrupt')."""
    import av

    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise MediaError("corrupt", "empty file (0 bytes)")
    try:
        with av.open(str(path)) as container:
            audio = container.streams.audio[0] if container.streams.audio else None
            video = container.streams.video[0] if container.streams.video else None
            whole = float(container.duration) / 1e6 if container.duration else 0.0
            a_dur = (_stream_seconds(audio) or whole) if audio is not None else 0.0
            v_dur = (_stream_seconds(video) or whole) if video is not None else 0.0
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise MediaError("corrupt", f"cannot open container: {exc}") from None
    return StreamInfo(max(a_dur, v_dur, whole), audio is not None, video is not None, a_dur, v_dur)


# The reference route writes the WAV with moviepy at 44.1 kHz; moviepy reads
# int(44100 * duration) samples, duration being the container's as ffmpeg prints
# it (rounded to 10 ms), zero-padding a shorter audio track.
MOVIEPY_RATE = 44100


def load_audio(
    path: str | Path, sample_rate: int = 22050, res_type: str = "soxr_hq", pad_to_container: bool = True,
    via_rate: int | None = MOVIEPY_RATE,
) -> np.ndarray:
    """Mono float32 audio at ``sample_rate``, as ``librosa.load`` of the reference WAV gives it.

    Decodes the first audio track with PyAV, brings it to ``via_rate`` with
    ffmpeg's resampler (swr) as moviepy's ffmpeg does when it writes the 44.1 kHz
    WAV, averages the channels and resamples to ``sample_rate`` with soxr, as
    librosa.load does: the signal then matches the reference route's to ~1e-7.
    Skipping the 44.1 kHz step changes the top mel bands of a 22.05 kHz track
    (the round trip low-passes them) by 10-25 grey levels; resampling straight
    to ``sample_rate`` with swr instead of soxr also differs visibly. With
    ``pad_to_container`` the signal is zero-padded or cut to the container's
    duration, as moviepy does, so the image's time axis matches the reference
    when audio and video lengths differ. Shape (samples,).
    """
    import av
    import librosa

    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MediaError("no_audio", "the clip has no audio track")
            stream = container.streams.audio[0]
            stream.thread_type = "AUTO"
            native_rate = stream.codec_context.sample_rate or stream.rate
            container_us = container.duration
            # float planar gives (channels, samples) per frame for any codec/sample format
            rate = via_rate or native_rate
            resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=rate)
            for packet in container.demux(stream):
                for frame in packet.decode():
                    for out in resampler.resample(frame):
                        chunks.append(out.to_ndarray())
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
    except MediaError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise MediaError("corrupt", f"audio decoding failed: {exc}") from None
    if not chunks:
        raise MediaError("no_audio", "the audio track holds no samples")
    signal = np.concatenate(chunks, axis=1).mean(axis=0).astype(np.float32)
    if rate != sample_rate:
        signal = librosa.resample(signal, orig_sr=rate, target_sr=sample_rate, res_type=res_type)
    if pad_to_container and container_us:
        seconds = ((container_us + 5000) // 10000) / 100  # ffmpeg's printed duration
        n_ref = int(MOVIEPY_RATE * seconds)
        length = int(np.ceil(n_ref * sample_rate / MOVIEPY_RATE))
        signal = signal[:length] if len(signal) >= length else np.pad(signal, (0, length - len(signal)))
    return np.ascontiguousarray(signal, dtype=np.float32)


def _clean(exc: BaseException) -> str:
    """decord's messages carry C++ source locations and timestamps; keep the reason."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ", "", text)
    return text[:300]


def sample_indices(n_frames: int, k: int) -> np.ndarray:
    """K frame indices spread evenly from the first to the last frame (all when fewer)."""
    if n_frames <= 0:
        return np.zeros(0, dtype=np.int64)
    if n_frames <= k:
        return np.arange(n_frames, dtype=np.int64)
    return np.unique(np.linspace(0, n_frames - 1, k).round().astype(np.int64))


def read_frames(path: str | Path, k: int, skip_nonref: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(frames (N, H, W, 3) RGB uint8, their frame indices) for K frames spread over the clip.

    Reads the packet index first (demuxing costs nothing next to decoding),
    then decodes from the key frame before each target only when that key frame
    lies ahead, so a clip with frequent key frames is read by seeking and one
    with rare key frames is read once, never twice. With ``skip_nonref`` the
    decoder skips frames no other frame refers to (most B-frames), roughly
    halving the work; each target then gets the nearest decoded frame, at most
    a frame or two away.
    """
    import av

    try:
        return _read_frames_pyav(path, k, skip_nonref)
    except MediaError:
        raise
    except _NoTimestamps:
        return read_frames_decord(path, k)
    except (av.error.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise MediaError("corrupt", f"video decoding failed: {_clean(exc)}") from None


class _NoTimestamps(Exception):
    pass


def _read_frames_pyav(path: str | Path, k: int, skip_nonref: bool) -> tuple[np.ndarray, np.ndarray]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
        if not packets:
            raise MediaError("too_short", "the video stream holds no frames")
        if any(p.pts is None for p in packets):
            raise _NoTimestamps()
        pts = np.sort(np.array([p.pts for p in packets]))
        wanted = pts[sample_indices(len(pts), k)]
        keys = [i for i, p in enumerate(packets) if p.is_keyframe] or [0]
        key_pts = np.array([packets[i].pts for i in keys])
        ctx = stream.codec_context
        ctx.thread_count = 1
        if skip_nonref:
            ctx.skip_frame = "NONREF"
        picked: dict[int, np.ndarray] = {}
        state = {"j": 0, "prev": None}

        def take(frame) -> None:
            if frame.pts not in picked:
                picked[frame.pts] = frame.to_ndarray(format="rgb24")

        def emit(frame) -> None:
            # assign this frame, or the previous one if nearer, to every target it passes
            prev = state["prev"]
            while state["j"] < len(wanted) and frame.pts >= wanted[state["j"]]:
                target = wanted[state["j"]]
                near_prev = prev is not None and abs(prev.pts - target) < abs(frame.pts - target)
                take(prev if near_prev else frame)
                state["j"] += 1
            state["prev"] = frame

        def key_before(target) -> int:
            return keys[max(0, int(np.searchsorted(key_pts, target, side="right")) - 1)]

        pos = key_before(wanted[0])
        while state["j"] < len(wanted):
            start = key_before(wanted[state["j"]])
            if start > pos:  # the next target is past a key frame ahead: drain, then jump
                for frame in ctx.decode(None):
                    emit(frame)
                ctx.flush_buffers()
                if state["j"] >= len(wanted):
                    break
                pos = key_before(wanted[state["j"]])
            for frame in ctx.decode(packets[pos]):
                emit(frame)
            pos += 1
            if pos >= len(packets):
                for frame in ctx.decode(None):
                    emit(frame)
                if state["j"] < len(wanted) and state["prev"] is not None:
                    take(state["prev"])  # targets past the last decoded frame get the last one
                break
    if not picked:
        raise MediaError("corrupt", "no frame could be decoded")
    order = sorted(picked)
    position = {p: i for i, p in enumerate(pts)}
    return np.stack([picked[p] for p in order]), np.array([position.get(p, -1) for p in order], dtype=np.int64)


def read_frames_decord(path: str | Path, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The same K frames through decord (exact frames, no skipping), for streams without timestamps."""
    import decord

    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        indices = sample_indices(len(reader), k)
        if len(indices) == 0:
            raise MediaError("too_short", "the video stream holds no frames")
        frames = reader.get_batch(list(indices)).asnumpy()
    except MediaError:
        raise
    except (decord.DECORDError, RuntimeError, ValueError, IndexError) as exc:
        raise MediaError("corrupt", f"video decoding failed: {_clean(exc)}") from None
    return frames, indices
