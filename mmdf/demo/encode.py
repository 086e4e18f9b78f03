"""Write a clip as MP4 (H.264 yuv420p + AAC mono) with PyAV, frame by frame.

Frames are encoded as they are rendered, so memory stays at one frame. The
file is written under a temporary name and renamed when complete: an
interrupted run never leaves a truncated clip under a final name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import av
import cv2
import numpy as np

from mmdf.files import atomic_write

AUDIO_BITRATE = 64_000
VIDEO_CRF = 20
PRESET = "superfast"


def write_mp4(path: Path, frames: Iterable[np.ndarray], fps: int, audio: np.ndarray | None, sample_rate: int) -> None:
    """Encode RGB uint8 frames (H, W, 3), H and W even, and optional mono float audio into ``path``.

    Single-threaded encoders, so the bytes depend on the input only (and
    parallelism comes from encoding several clips at once).
    """
    path = Path(path)
    frames = iter(frames)
    first = next(frames)
    with atomic_write(path) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps, options={"crf": str(VIDEO_CRF), "preset": PRESET})
        video.height, video.width = first.shape[:2]
        video.pix_fmt = "yuv420p"
        video.codec_context.thread_count = 1
        sound = None
        if audio is not None:
            sound = container.add_stream("aac", rate=sample_rate, layout="mono")
            sound.bit_rate = AUDIO_BITRATE
            sound.codec_context.thread_count = 1
        for img in _chain(first, frames):
            # OpenCV's BT.601 limited-range I420 matches swscale's to 1 grey level, ~15x faster
            yuv = cv2.cvtColor(img, cv2.COLOR_RGB2YUV_I420)
            for packet in video.encode(av.VideoFrame.from_ndarray(yuv, format="yuv420p")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if sound is not None:
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio, np.float32)[None], format="fltp", layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = 0
            for packet in sound.encode(frame):
                container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)


def _chain(first: np.ndarray, rest: Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    yield first
    yield from rest
