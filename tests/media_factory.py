"""Tiny test clips made on the fly with PyAV: H.264 video (a real face or noise) and AAC audio.

Shared test helper (owned by the preprocessing tests; others may import it).
Faces come from scikit-image's astronaut photo, which MTCNN finds reliably.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


def face_frame(size: int = 256, shift: int = 0) -> np.ndarray:
    """(size, size, 3) RGB uint8: the astronaut's portrait, shifted sideways by ``shift`` pixels."""
    import cv2
    from skimage import data

    img = cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)
    return np.roll(img, shift, axis=1)


def noise_frame(size: int = 256, seed: int = 0) -> np.ndarray:
    """Smooth coloured noise: no face in it."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (size // 16, size // 16, 3), dtype=np.uint8)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def make_clip(
    path: str | Path,
    duration: float = 2.0,
    audio_duration: float | None = None,
    face: bool = True,
    audio: str | None = "tone",  # "tone", "silent" or None (no audio track)
    size: int = 256,
    fps: int = 25,
    sample_rate: int = 44100,
    seed: int = 0,
    video: bool = True,  # False: an audio-only .mp4
    faststart: bool = False,  # index (moov) at the front, as web downloads have it
    rotation: int = 0,  # frames stored turned clockwise by this, with a display matrix turning them upright
) -> Path:
    """Write an H.264 + AAC mp4; ``audio_duration`` differing from ``duration`` makes mismatched streams."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_frames = max(1, int(round(duration * fps)))
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        video_stream = _add_video(container, size, fps, rotation) if video else None
        if audio is not None:
            audio_stream = container.add_stream("aac", rate=sample_rate)
            audio_stream.layout = "mono"
        if video_stream is not None:
            _encode_video(container, video_stream, n_frames, face, size, seed, rotation)
        if audio is not None:
            seconds = duration if audio_duration is None else audio_duration
            n = int(seconds * sample_rate)
            t = np.arange(n) / sample_rate
            rng = np.random.default_rng(seed)
            if audio == "silent":
                signal = np.zeros(n, np.float32)
            else:
                signal = (0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.5 * t)) + 0.05 * rng.standard_normal(n))
            signal = signal.astype(np.float32)
            chunk = 1024
            for start in range(0, n, chunk):
                piece = signal[start : start + chunk][None, :]
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(piece), format="flt", layout="mono")
                frame.sample_rate = sample_rate
                frame.pts = start
                frame.time_base = Fraction(1, sample_rate)
                for packet in audio_stream.encode(frame):
                    container.mux(packet)
            for packet in audio_stream.encode():
                container.mux(packet)
    if rotation and not hasattr(av.video.stream.VideoStream, "set_display_rotation"):
        _set_rotation_with_ffmpeg(path, rotation)  # PyAV too old to write a display matrix
    return path


def _set_rotation_with_ffmpeg(path: Path, rotation: int) -> None:
    """Remux ``path`` with a display matrix, with the ffmpeg binary that imageio-ffmpeg ships."""
    import subprocess

    import imageio_ffmpeg

    tmp = path.with_name("rot-" + path.name)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-display_rotation", str(rotation),
                    "-i", str(path), "-c", "copy", str(tmp)], check=True)
    tmp.replace(path)


def _add_video(container, size: int, fps: int, rotation: int):
    video = container.add_stream("libx264", rate=fps)
    video.width = video.height = size
    video.pix_fmt = "yuv420p"
    video.options = {"preset": "ultrafast", "g": "10"}
    if rotation and hasattr(video, "set_display_rotation"):
        video.set_display_rotation(rotation)  # players turn the frames counter-clockwise by this
    return video


def _encode_video(container, video, n_frames: int, face: bool, size: int, seed: int, rotation: int) -> None:
    import av

    for i in range(n_frames):
        image = face_frame(size, shift=2 * i % 20) if face else noise_frame(size, seed + i)
        image = np.ascontiguousarray(np.rot90(image, -(rotation // 90)))  # stored turned clockwise
        for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
    for packet in video.encode():
        container.mux(packet)


def truncate(path: str | Path, share: float) -> Path:
    """Cut a file to ``share`` of its bytes, as a download cut short leaves it."""
    path = Path(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * share)])
    return path


def make_labels(path: str | Path, names_targets: list[tuple[str, int | None]]) -> Path:
    """A label file (``video_name,target``) or, with targets None, a test list (``video_name``)."""
    path = Path(path)
    with_target = any(t is not None for _, t in names_targets)
    lines = ["video_name,target" if with_target else "video_name"]
    lines += [f"{n},{t}" if with_target else n for n, t in names_targets]
    path.write_text("\n".join(lines) + "\n")
    return path
