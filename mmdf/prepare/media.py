"""Decoding clips in memory: the audio track and sampled frames with PyAV (decord as a fallback).

No temporary files and no subprocesses: the audio is decoded straight from the
container and sampled frames are reached by seeking, so the cost of a clip is
its audio plus K frames, not its whole video stream. Memory is bounded too:
audio is kept only for the span used (see ``span`` below) and as mono, and
video packets are read twice as a stream (once for their timestamps, once to
decode the K frames), never held.

A ``span`` ``(start, end)`` in seconds from the start of each stream limits
decoding to that part of the clip (``None`` = all of it). What decoded is
returned next to the data, so the caller can tell a whole stream from one that
stops short of the duration its container declares (a truncated download).
Frames come upright: a display matrix (phone videos shot in portrait) is
applied after decoding.
"""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

# containers PyAV (FFmpeg) opens that hold talking-face clips
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".m2ts", ".mts",
                  ".flv", ".wmv", ".3gp", ".ogv")

# Less than this may be missing at the end of a stream without calling it truncated
# (encoders pad or trim the last audio frame; the last video frame's duration is a guess).
MIN_MISSING_S = 0.1
# Packets decoded past the end of the span at most, waiting for the frames of the last targets.
PAST_SPAN_PACKETS = 64
# Audio samples (per channel) handed to the resampler at once: one call per ~0.4 s of audio
# instead of one per codec frame (1024 samples); the resampler is a stream filter, so the
# output is the same, at a fraction of the per-call cost.
RESAMPLE_BATCH = 16384


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
    container_us: int | None = None  # the container's duration in microseconds, as ffmpeg reads it


def _stream_seconds(stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return 0.0


def open_without_video_probe(path: str | Path):
    """``av.open`` without decoding a video frame while probing the streams.

    ffmpeg's stream probing decodes the first video frame to learn its pixel
    format: 15-25 ms of a 1080p clip, 3-5 times the cost of decoding its
    whole audio track. Reading durations and decoding audio need none of it.
    Formats that list their streams only after probing (MPEG-TS) open as usual.
    """
    import av

    try:
        return av.open(str(path), stream_options=[{"skip_frame": "all"}] * 16)
    except ValueError:  # PyAV: this format does not expose its streams before probing
        return av.open(str(path))


def probe(path: str | Path) -> StreamInfo:
    """Open the container and read stream durations; raises :class:`MediaError` ('corrupt')."""
    import av

    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise MediaError("corrupt", "empty file (0 bytes)")
    try:
        with open_without_video_probe(path) as container:
            audio = container.streams.audio[0] if container.streams.audio else None
            video = container.streams.video[0] if container.streams.video else None
            whole = float(container.duration) / 1e6 if container.duration else 0.0
            a_dur = (_stream_seconds(audio) or whole) if audio is not None else 0.0
            v_dur = (_stream_seconds(video) or whole) if video is not None else 0.0
            container_us = container.duration
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise MediaError("corrupt", f"cannot open container: {exc}") from None
    return StreamInfo(max(a_dur, v_dur, whole), audio is not None, video is not None, a_dur, v_dur, container_us)


def used_span(duration: float, max_duration: float | None) -> tuple[float, float]:
    """(start, end) seconds of the part of a clip that is used: all of it, or its middle ``max_duration``."""
    if max_duration is None or not duration > max_duration:
        return 0.0, float(duration)
    start = (duration - max_duration) / 2
    return start, start + max_duration


def is_truncated(decoded: float, expected: float, tolerance: float) -> bool:
    """Whether a stream that decoded ``decoded`` of ``expected`` seconds stops short (see MIN_MISSING_S)."""
    return expected - decoded > max(MIN_MISSING_S, tolerance * expected)


# --------------------------------------------------------------------------- audio

# The reference route writes the WAV with moviepy at 44.1 kHz; moviepy reads
# int(44100 * duration) samples, duration being the container's as ffmpeg prints
# it (rounded to 10 ms), zero-padding a shorter audio track.
MOVIEPY_RATE = 44100


@dataclass
class AudioTrack:
    """Mono float32 ``signal`` at ``rate``; ``decoded`` seconds of the span reached by the decoded samples.

    ``tail_error``: why the last packet(s) did not decode (a file cut short), else None.
    """

    signal: np.ndarray
    rate: int
    decoded: float
    container_us: int | None
    tail_error: str | None = None


class _SampleWindow:
    """Keeps the samples of a resampled stream that fall inside ``[start, end)`` seconds, dropping the rest."""

    def __init__(self, rate: int, start: float, end: float, trim: bool):
        self.rate, self.start, self.end, self.trim = rate, start, end, trim
        self.t0 = 0.0  # stream time of the first decoded sample
        self.seen = 0
        self.chunks: list[np.ndarray] = []

    def bounds(self) -> tuple[int, float]:
        if not self.trim:
            return 0, math.inf
        return max(0, round((self.start - self.t0) * self.rate)), round((self.end - self.t0) * self.rate)

    def add(self, mono: np.ndarray) -> None:
        first, stop = self.bounds()
        lo, hi = max(0, first - self.seen), min(len(mono), stop - self.seen)
        if hi > lo:
            self.chunks.append(mono[lo:hi] if (lo, hi) != (0, len(mono)) else mono)
        self.seen += len(mono)

    def full(self) -> bool:
        return self.seen >= self.bounds()[1]

    def decoded(self) -> float:
        """Seconds of the span covered by decoded samples."""
        reached = self.t0 + self.seen / self.rate
        return max(0.0, min(reached, self.end) - self.start) if self.trim else reached


def _decoded_frames(container, stream, state: dict):
    """Frames of ``stream`` from where the container stands.

    A packet that fails to decode ends the stream there (``state['tail_error']``
    says why): a file cut short ends in a partial packet. A packet with data
    that decodes after a failed one means damage inside the stream: corrupt.
    """
    import av

    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            state.setdefault("tail_error", str(exc))
            continue
        if frames and packet.size and "tail_error" in state:
            raise MediaError("corrupt", f"audio decoding failed: {state['tail_error']}")
        yield from frames


def _mono_chunks(container, stream, rate: int, state: dict):
    """Yield (time of the first frame, mono float32 chunk at ``rate``) from where the container stands.

    ffmpeg's resampler (swr) brings the audio to ``rate`` as moviepy's ffmpeg
    does; channels are averaged chunk by chunk (the same numbers as averaging
    the whole signal), so only the mono signal is ever held.
    """
    import av

    # float planar gives (channels, samples) per frame for any codec/sample format
    resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=rate)
    first = None
    for frame in _joined_frames(_decoded_frames(container, stream, state)):
        first = float(frame.pts * frame.time_base) if first is None and frame.pts is not None else first
        for out in resampler.resample(frame):
            yield first, _mono(out.to_ndarray())
    for out in resampler.resample(None):
        yield first, _mono(out.to_ndarray())


def _mono(planes: np.ndarray) -> np.ndarray:
    """(channels, samples) -> (samples,): the channel mean (a mono track is its own mean)."""
    return planes[0] if len(planes) == 1 else planes.mean(axis=0)


def _joined_frames(frames):
    """Consecutive decoded frames of the same format joined into frames of about RESAMPLE_BATCH samples."""
    batch, samples = [], 0
    for frame in frames:
        if batch and _frame_kind(frame) != _frame_kind(batch[0]):
            yield _join(batch)
            batch, samples = [], 0
        batch.append(frame)
        samples += frame.samples
        if samples >= RESAMPLE_BATCH:
            yield _join(batch)
            batch, samples = [], 0
    if batch:
        yield _join(batch)


def _frame_kind(frame) -> tuple:
    return frame.format.name, frame.layout.name, frame.sample_rate


def _join(frames: list):
    """One audio frame holding ``frames``' samples in order, timed as the first."""
    import av

    if len(frames) == 1:
        return frames[0]
    first = frames[0]
    data = np.concatenate([f.to_ndarray() for f in frames], axis=1)  # planar and packed alike
    joined = av.AudioFrame.from_ndarray(data, format=first.format.name, layout=first.layout.name)
    joined.sample_rate, joined.pts, joined.time_base = first.sample_rate, first.pts, first.time_base
    return joined


def decode_audio(
    path: str | Path, sample_rate: int = 22050, res_type: str = "soxr_hq", via_rate: int | None = MOVIEPY_RATE,
    span: tuple[float, float] | None = None,
) -> AudioTrack:
    """The first audio track (of ``span`` only, when given) as mono float32 at ``sample_rate``, not padded.

    The signal is empty when nothing decoded (a truncated file, or a track
    without samples: see :func:`no_samples`).

    Decodes with PyAV, brings it to ``via_rate`` with ffmpeg's resampler as
    moviepy's ffmpeg does when it writes the 44.1 kHz WAV, averages the
    channels and resamples to ``sample_rate`` with soxr, as librosa.load does:
    the signal then matches the reference route's to ~1e-7. Raises
    :class:`MediaError` (no_audio, corrupt).
    """
    import av
    import librosa

    try:
        with open_without_video_probe(path) as container:
            if not container.streams.audio:
                raise MediaError("no_audio", "the clip has no audio track")
            stream = container.streams.audio[0]
            stream.thread_type = "AUTO"
            rate = via_rate or stream.codec_context.sample_rate or stream.rate
            state: dict = {}
            window = _audio_window(container, stream, rate, span, state)
            container_us = container.duration
    except MediaError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise MediaError("corrupt", f"audio decoding failed: {exc}") from None
    signal = np.concatenate(window.chunks).astype(np.float32, copy=False) if window.chunks else np.zeros(0, np.float32)
    window.chunks = []
    if rate != sample_rate and len(signal):
        signal = librosa.resample(signal, orig_sr=rate, target_sr=sample_rate, res_type=res_type)
    signal = np.ascontiguousarray(signal, dtype=np.float32)
    return AudioTrack(signal, sample_rate, window.decoded(), container_us, state.get("tail_error"))


def _audio_window(container, stream, rate: int, span: tuple[float, float] | None, state: dict) -> _SampleWindow:
    """Decode ``stream`` into a window of ``span`` (seeking to its start), stopping once the span is full."""
    origin = float((stream.start_time or 0) * stream.time_base)
    window = _SampleWindow(rate, *(span or (0.0, math.inf)), trim=span is not None)
    if span is not None and span[0] > 0:
        container.seek(int((origin + span[0]) / stream.time_base), stream=stream)
    for first, mono in _mono_chunks(container, stream, rate, state):
        if span is not None and window.seen == 0:
            window.t0 = (first or origin) - origin
        window.add(mono)
        if window.full():
            break
    return window


def no_samples(span: tuple[float, float] | None = None) -> MediaError:
    return MediaError("no_audio", "the audio track holds no samples" + (" in the used span" if span else ""))


def reference_length(container_us: int | None, sample_rate: int) -> int | None:
    """Samples at ``sample_rate`` of the reference WAV: moviepy's int(44100 * printed duration), resampled."""
    if not container_us:
        return None
    seconds = ((container_us + 5000) // 10000) / 100  # ffmpeg's printed duration
    n_ref = int(MOVIEPY_RATE * seconds)
    return int(np.ceil(n_ref * sample_rate / MOVIEPY_RATE))


def fit_length(signal: np.ndarray, length: int | None) -> np.ndarray:
    """``signal`` cut or zero-padded to ``length`` samples (unchanged when None)."""
    if length is None:
        return signal
    return signal[:length] if len(signal) >= length else np.pad(signal, (0, length - len(signal)))


def load_audio(
    path: str | Path, sample_rate: int = 22050, res_type: str = "soxr_hq", pad_to_container: bool = True,
    via_rate: int | None = MOVIEPY_RATE,
) -> np.ndarray:
    """Mono float32 audio at ``sample_rate``, as ``librosa.load`` of the reference WAV gives it.

    See :func:`decode_audio`. Skipping the 44.1 kHz step changes the top mel
    bands of a 22.05 kHz track (the round trip low-passes them) by 10-25 grey
    levels; resampling straight to ``sample_rate`` with swr instead of soxr
    also differs visibly. With ``pad_to_container`` the signal is zero-padded
    or cut to the container's duration, as moviepy does, so the image's time
    axis matches the reference when audio and video lengths differ. Shape (samples,).
    """
    track = decode_audio(path, sample_rate, res_type, via_rate)
    if track.tail_error:
        raise MediaError("corrupt", f"audio decoding failed: {track.tail_error}")
    if not len(track.signal):
        raise no_samples()
    if pad_to_container:
        return fit_length(track.signal, reference_length(track.container_us, sample_rate))
    return track.signal


# --------------------------------------------------------------------------- video


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


def upright(frames: np.ndarray, rotation: int) -> np.ndarray:
    """Frames (N, H, W, 3) turned by ``rotation`` degrees counter-clockwise, as a player displays them."""
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(frames, turns, axes=(1, 2))) if turns else frames


def frame_rotation(frame, stream) -> int:
    """Counter-clockwise degrees a player turns this frame by (display matrix; old ``rotate`` tag)."""
    rotation = getattr(frame, "rotation", None)  # PyAV >= 13: the frame's display matrix
    if rotation is None:
        tag = (stream.metadata or {}).get("rotate")  # clockwise degrees in ffmpeg < 5
        rotation = -float(tag) if tag else 0
    return int(round(float(rotation) / 90)) * 90 % 360


@dataclass
class VideoIndex:
    """Timestamps of a clip's video packets (decode order) over the used span, read without decoding.

    ``pts`` of every non-empty packet from the seek point on, ``keys`` the
    positions of key frames among them, ``targets`` the packets the K frames
    are sampled among (those inside the span), ``reached`` how far into the
    stream the packets go (seconds; NaN when unknown), ``seek`` where the
    second pass starts (stream time base; None = the beginning), ``time_base`` the stream's (seconds per
    ``pts`` unit; None without timestamps).
    """

    pts: np.ndarray
    keys: np.ndarray
    targets: np.ndarray
    reached: float
    seek: int | None
    span: tuple[float, float] | None = None
    timestamps: bool = True  # False: packets without timestamps; frames come from decord
    time_base: Fraction | None = None

    def times(self, indices: np.ndarray) -> np.ndarray:
        """Seconds on the container's clock (``pts * time_base``, as :func:`read_window` gives them) of
        frames given by their positions among ``targets``; NaN for -1 or without timestamps."""
        indices = np.asarray(indices, dtype=np.int64)
        out = np.full(len(indices), np.nan)
        if self.time_base is not None and len(self.targets):
            known = (indices >= 0) & (indices < len(self.targets))
            out[known] = [float(int(p) * self.time_base) for p in self.targets[indices[known]]]  # exact, as there
        return out

    def decoded(self) -> float:
        """Seconds of the span (or of the stream) the packets cover."""
        start, end = self.span or (0.0, math.inf)
        return max(0.0, min(self.reached, end) - start)


def index_video(path: str | Path, span: tuple[float, float] | None = None) -> VideoIndex:
    """First pass: packet timestamps of the span (no decoding, nothing held); raises :class:`MediaError`."""
    import av

    try:
        return _index_pyav(path, span)
    except MediaError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise MediaError("corrupt", f"video decoding failed: {_clean(exc)}") from None


def _index_pyav(path: str | Path, span: tuple[float, float] | None) -> VideoIndex:
    import av

    # a plain open: packet durations of some containers (Matroska) come from the probed frame rate
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb, origin = stream.time_base, float((stream.start_time or 0) * stream.time_base)
        seek = int((origin + span[0]) / tb) if span is not None and span[0] > 0 else None
        if seek is not None:
            container.seek(seek, stream=stream)
        end = math.inf if span is None else origin + span[1]
        pts, keys, reached = [], [], -math.inf
        for packet in container.demux(stream):
            if not packet.size:
                continue
            if packet.pts is None:
                return VideoIndex(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), math.nan,
                                  None, span, timestamps=False)
            if float(packet.pts * tb) >= end:
                break
            keys += [len(pts)] if packet.is_keyframe else []
            pts.append(packet.pts)
            reached = max(reached, float((packet.pts + (packet.duration or 0)) * tb))
    return _finish_index(np.array(pts, np.int64), keys, reached - origin if pts else 0.0, seek, span, origin, tb)


def _finish_index(pts, keys, reached, seek, span, origin, tb) -> VideoIndex:
    inside = pts if span is None else pts[pts * float(tb) - origin >= span[0]]
    targets = np.sort(inside if len(inside) else pts)
    return VideoIndex(pts, np.array(keys or [0], np.int64), targets, reached, seek, span, time_base=tb)


class _Picker:
    """Assigns decoded frames to the target timestamps they pass: the nearer of a frame and its predecessor."""

    def __init__(self, wanted: np.ndarray, stream):
        self.wanted, self.stream = wanted, stream
        self.j, self.prev, self.rotation = 0, None, None
        self.picked: dict[int, np.ndarray] = {}

    @property
    def done(self) -> bool:
        return self.j >= len(self.wanted)

    def take(self, frame) -> None:
        if self.rotation is None:
            self.rotation = frame_rotation(frame, self.stream)
        if frame.pts not in self.picked:
            self.picked[frame.pts] = frame.to_ndarray(format="rgb24")

    def emit(self, frame) -> None:
        prev = self.prev
        while not self.done and frame.pts >= self.wanted[self.j]:
            target = self.wanted[self.j]
            near_prev = prev is not None and abs(prev.pts - target) < abs(frame.pts - target)
            self.take(prev if near_prev else frame)
            self.j += 1
        self.prev = frame

    def finish(self) -> None:
        """Targets past the last decoded frame get the last one."""
        if not self.done and self.prev is not None:
            self.take(self.prev)


def read_indexed_frames(path: str | Path, index: VideoIndex, k: int, skip_nonref: bool = True
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Second pass: (frames (N, H, W, 3) RGB uint8 upright, their indices among the span's packets)."""
    import av

    if not index.timestamps:
        return read_frames_decord(path, k, index.span)
    if not len(index.targets):
        raise MediaError("too_short", "the video stream holds no frames" + (" in the used span" if index.span else ""))
    try:
        return _decode_targets(path, index, k, skip_nonref)
    except MediaError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise MediaError("corrupt", f"video decoding failed: {_clean(exc)}") from None


@contextlib.contextmanager
def video_decoder(path: str | Path, skip_nonref: bool):
    """(container, video stream, codec context) set up as the face half decodes: one thread (the workers
    are the parallelism), frames no other frame refers to skipped with ``skip_nonref``."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        ctx.thread_count = 1
        if skip_nonref:
            ctx.skip_frame = "NONREF"
        yield container, stream, ctx


def _decode_targets(path: str | Path, index: VideoIndex, k: int, skip_nonref: bool) -> tuple[np.ndarray, np.ndarray]:
    wanted = index.targets[sample_indices(len(index.targets), k)]
    with video_decoder(path, skip_nonref) as (container, stream, ctx):
        if index.seek is not None:
            container.seek(index.seek, stream=stream)
        picker = _Picker(wanted, stream)
        _feed(container.demux(stream), ctx, index, picker)
    if not picker.picked:
        raise MediaError("corrupt", "no frame could be decoded")
    order = sorted(picker.picked)
    position = {p: i for i, p in enumerate(index.targets)}
    frames = upright(np.stack([picker.picked[p] for p in order]), picker.rotation or 0)
    return frames, np.array([position.get(p, -1) for p in order], dtype=np.int64)


def _feed(packets, ctx, index: VideoIndex, picker: _Picker) -> None:
    """Decode only the packets the targets need, in one pass over the stream.

    Decoding starts at the key frame before a target only when that key frame
    lies ahead (drain, flush, skip to it), so a clip with frequent key frames
    is read by seeking and one with rare key frames is decoded once, never twice.
    """
    import av

    key_pts = index.pts[index.keys]

    def key_before(target) -> int:
        return int(index.keys[max(0, int(np.searchsorted(key_pts, target, side="right")) - 1)])

    pos, i, last = key_before(picker.wanted[0]), -1, len(index.pts) + PAST_SPAN_PACKETS
    for packet in packets:
        i += int(bool(packet.size))
        if not packet.size or i < pos:
            continue
        if key_before(picker.wanted[picker.j]) > pos:  # the next target is past a key frame ahead
            _drain(ctx, picker)
            ctx.flush_buffers()
            if picker.done:
                return
            pos = key_before(picker.wanted[picker.j])
            if i < pos:
                continue
        try:
            frames = ctx.decode(packet)
        except av.error.FFmpegError:
            if i < len(index.pts) - 1:
                raise
            break  # a partial last packet: the file was cut short there
        for frame in frames:
            picker.emit(frame)
        pos += 1
        if picker.done:
            return
        if i >= last:
            break
    _drain(ctx, picker)
    picker.finish()


def _drain(ctx, picker: _Picker) -> None:
    for frame in ctx.decode(None):
        picker.emit(frame)


def read_frames(path: str | Path, k: int, skip_nonref: bool = True, span: tuple[float, float] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """(frames (N, H, W, 3) RGB uint8, their frame indices) for K frames spread over the clip (or ``span``).

    Reads the packet timestamps first (demuxing costs nothing next to
    decoding), then decodes from the key frame before each target. With
    ``skip_nonref`` the decoder skips frames no other frame refers to (most
    B-frames), roughly halving the work; each target then gets the nearest
    decoded frame, at most a frame or two away. Frames are turned upright.
    """
    return read_indexed_frames(path, index_video(path, span), k, skip_nonref)


def read_frames_decord(path: str | Path, k: int, span: tuple[float, float] | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The same K frames through decord (exact frames, no skipping, upright), for streams without timestamps."""
    import decord

    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        first, stop = 0, len(reader)
        if span is not None:
            fps = reader.get_avg_fps() or 25.0
            first, stop = min(stop, int(span[0] * fps)), min(stop, int(math.ceil(span[1] * fps)))
        indices = first + sample_indices(stop - first, k)
        if len(indices) == 0:
            raise MediaError("too_short", "the video stream holds no frames")
        frames = reader.get_batch(list(indices)).asnumpy()
    except MediaError:
        raise
    except (decord.DECORDError, RuntimeError, ValueError, IndexError) as exc:
        raise MediaError("corrupt", f"video decoding failed: {_clean(exc)}") from None
    return frames, indices  # decord applies the display matrix itself


def read_window(path: str | Path, start: float, end: float, max_side: int | None = None
                ) -> tuple[np.ndarray, np.ndarray, float]:
    """Every frame whose time lies in ``[start, end)`` seconds of the video stream: (frames (T, H, W, 3)
    RGB uint8 upright, their presentation times (T,) on the container's clock, the stream's frame rate).

    Seeks to the key frame before ``start``. Frames larger than ``max_side`` are
    scaled down while converting; one reformatter serves every frame (a new
    one per frame, as ``frame.to_ndarray(format=...)`` makes, costs 5-10 times more).
    """
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            origin = float((stream.start_time or 0) * stream.time_base)
            container.seek(int((origin + start) / stream.time_base), stream=stream, backward=True)
            frames, times, rotation = _window_frames(container.decode(stream), stream, origin, (start, end), max_side)
            fps = float(stream.average_rate or stream.guessed_rate or 25)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise MediaError("corrupt", f"video decoding failed: {_clean(exc)}") from None
    if not frames:
        raise MediaError("too_short", f"no video frame between {start:.2f} and {end:.2f} s")
    return upright(np.stack(frames), rotation), np.asarray(times), fps


def _window_frames(decoded, stream, origin: float, window: tuple[float, float], max_side: int | None):
    """(RGB arrays, times, rotation) of the decoded frames inside ``window`` (stream seconds)."""
    from av.video.reformatter import VideoReformatter

    reformatter, frames, times, rotation = VideoReformatter(), [], [], 0
    for frame in decoded:
        t = float(frame.pts * stream.time_base) if frame.pts is not None else math.nan
        if t - origin >= window[1]:
            break
        if t - origin < window[0]:
            continue
        scale = min(1.0, (max_side or math.inf) / max(frame.width, frame.height))
        size = {"width": round(frame.width * scale) // 2 * 2, "height": round(frame.height * scale) // 2 * 2}
        frames.append(reformatter.reformat(frame, format="rgb24", interpolation="AREA",
                                           **(size if scale < 1 else {})).to_ndarray())
        times.append(t)
        rotation = frame_rotation(frame, stream)
    return frames, times, rotation
