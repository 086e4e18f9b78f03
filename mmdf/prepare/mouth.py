"""The sync half: the mouth over a contiguous window of frames, and the voice at the same instants.

Lip-sync and dubbed fakes show in how the mouth moves with the voice, which
takes every frame of a stretch of the clip (the face half samples a handful),
so this half decodes a window of ``prepare.sync.window`` seconds from the
middle of the used span, scaled down to ``prepare.sync.frame_size`` (the mouth
crops are small; full 1080p frames would cost memory, not detail). The mouth's place comes from MTCNN's
five landmarks on a few frames, interpolated in between (a head moves smoothly over a second or two):
those the face half found on its K sampled frames (:class:`MouthAnchors`; no second detection) when at
least ``detect_frames`` of them fall in the window, else MTCNN's own on ``detect_frames`` frames of it.
Each frame gets:

- a small grey crop around the mouth (``mouth``), for the learned sync model;
- three numbers comparing the mouth region with the upper face (``artefacts``):
  lip-sync generators re-render only the lower face, whose sharpness,
  high-frequency energy and colour then drift from the rest of the face;
- the audio of its own interval on the container's clock: a coarse log-mel
  (``mel``) and the loudness (``envelope``, dB), so that frame ``i`` and audio
  row ``i`` are the same instant.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmdf.prepare.config import FaceConfig, SyncConfig
from mmdf.prepare.faces import FaceResult, _cut, track_main_face
from mmdf.prepare.media import MediaError, decode_audio, open_without_video_probe, read_window
from mmdf.prepare.store import pack_mouths, read_sync

ARTEFACTS = ("log_sharpness_ratio", "log_hf_ratio", "colour_distance")  # mouth region against upper face
MEL_HOP_S = 0.01
ARTEFACT_SIZE = 64  # pixels of the colour regions the artefact measures are taken on


@dataclass
class SyncTrack:
    """One clip's window: ``mouth`` (T, S, S) uint8, ``mel`` (T, n_mels) and ``envelope`` (T,) float32,
    ``artefacts`` (T, 3) float32, ``times`` (T,) seconds, and the frame rate."""

    mouth: np.ndarray
    mel: np.ndarray
    envelope: np.ndarray
    artefacts: np.ndarray
    times: np.ndarray
    fps: float
    # the mouth crops as a cache file stores them, where the track was read from one: lending the
    # track to another cache copies these bytes instead of encoding the decoded crops again (lossy)
    stored_mouth: dict | None = None

    def arrays(self, codec: str | None = None, quality: int = 95) -> dict[str, np.ndarray]:
        """The arrays; with ``codec``, as the cache stores them: the mouth crops encoded (mmdf.prepare.store),
        or the bytes they were read from."""
        if codec is None:
            mouth = {"mouth": self.mouth}
        else:
            mouth = self.stored_mouth if self.stored_mouth is not None else pack_mouths(self.mouth, codec, quality)
        return {**mouth, "mel": self.mel, "envelope": self.envelope,
                "artefacts": self.artefacts, "times": self.times, "fps": np.float64(self.fps)}

    @classmethod
    def load(cls, path: str | Path) -> "SyncTrack":
        z = read_sync(path)
        return cls(z["mouth"], z["mel"], z["envelope"], z["artefacts"], z["times"], float(z["fps"]), z["stored"])


@dataclass
class MouthAnchors:
    """The face half's main face where its landmarks and time are known: ``times`` (N,) seconds on the
    container's clock, ``mouth`` and ``eyes`` (N, 2) centres and ``width`` (N,) face-box widths, in pixels
    of the full-resolution upright frames, whose size is ``frame_size`` (h, w)."""

    times: np.ndarray
    mouth: np.ndarray
    eyes: np.ndarray
    width: np.ndarray
    frame_size: tuple[int, int]

    @classmethod
    def of(cls, faces: FaceResult, times: np.ndarray, frame_size: tuple[int, int]) -> "MouthAnchors":
        """Those of ``faces`` (``times``: one per crop, NaN where unknown) whose time and landmarks are known."""
        known = np.isfinite(np.asarray(times, dtype=float)) & np.isfinite(faces.points).all(axis=(1, 2))
        pts, boxes = faces.points[known].astype(np.float64), faces.boxes[known].astype(np.float64)
        return cls(np.asarray(times, dtype=float)[known], pts[:, 3:5].mean(axis=1), pts[:, 0:2].mean(axis=1),
                   boxes[:, 2] - boxes[:, 0], (int(frame_size[0]), int(frame_size[1])))


def with_audio_of(track: SyncTrack, path: str | Path, cfg: SyncConfig) -> SyncTrack:
    """``track``'s mouth, with the audio of ``path`` at the same frames (its video stream is ``track``'s)."""
    mel, envelope = frame_audio(path, track.times, track.fps, cfg)
    return SyncTrack(track.mouth, mel, envelope, track.artefacts, track.times, track.fps, track.stored_mouth)


def sync_window(span: tuple[float, float], seconds: float) -> tuple[float, float]:
    """The middle ``seconds`` of ``span`` (all of it when shorter)."""
    mid, half = (span[0] + span[1]) / 2, min(seconds, span[1] - span[0]) / 2
    return mid - half, mid + half


def mouth_track(path: str | Path, span: tuple[float, float], cfg: SyncConfig, faces: FaceConfig,
                detector, anchors: MouthAnchors | None = None) -> SyncTrack:
    """The :class:`SyncTrack` of a clip; raises :class:`MediaError` (too_short, no_face, corrupt).

    With the face half's ``anchors`` covering the window (see :func:`anchored_places`) the mouth is
    placed by them and ``detector`` is not called; otherwise (no anchors: a face half lent by another
    cache, failed or faceless, frames without timestamps; or too few in the window: a long clip whose
    K frames lie seconds apart) MTCNN looks at ``detect_frames`` frames of the window itself.
    """
    start, end = sync_window(span, cfg.window)
    frames, times, fps = read_window(path, start, end, cfg.frame_size)
    if len(frames) < cfg.min_frames:
        raise MediaError("too_short", f"{len(frames)} frames in the sync window, fewer than "
                                      f"prepare.sync.min_frames={cfg.min_frames}")
    places = anchored_places(anchors, times, frames.shape[1:3], cfg)
    if places is None:
        places = mouth_places(frames, detector, faces, cfg, anchors.frame_size if anchors is not None else None)
    mouth, artefacts = region_crops(frames, places, cfg)
    mel, envelope = frame_audio(path, times, fps, cfg)
    return SyncTrack(mouth, mel, envelope, artefacts, times, fps)


def anchored_places(anchors: MouthAnchors | None, times: np.ndarray, size: tuple[int, int], cfg: SyncConfig
                    ) -> np.ndarray | None:
    """The rows of :func:`mouth_places` for frames at ``times`` (T,) of size ``size`` (h, w), interpolated
    in time from the face half's ``anchors`` and scaled from full resolution to that size; None when
    fewer than ``detect_frames`` anchors lie in the window widened by ``anchor_margin`` seconds on each
    side. The margin is there because the K sampled frames rarely fall on the window's edges: an anchor
    just outside bounds the interpolation of the first and last frames (a head moves little in half a
    second) instead of the nearest inside one being held, and it counts towards ``detect_frames``."""
    if anchors is None or not len(anchors.times):
        return None
    lo, hi = float(times[0]) - cfg.anchor_margin, float(times[-1]) + cfg.anchor_margin
    near = np.flatnonzero((anchors.times >= lo) & (anchors.times <= hi))
    if len(near) < max(1, cfg.detect_frames):
        return None
    near = near[np.argsort(anchors.times[near])]
    sy, sx = size[0] / anchors.frame_size[0], size[1] / anchors.frame_size[1]
    columns = (anchors.mouth[near, 0] * sx, anchors.mouth[near, 1] * sy, anchors.eyes[near, 0] * sx,
               anchors.eyes[near, 1] * sy, anchors.width[near] * sx * cfg.mouth_scale)
    return np.stack([np.interp(times, anchors.times[near], c) for c in columns], axis=1)


def mouth_places(frames: np.ndarray, detector, faces: FaceConfig, cfg: SyncConfig,
                 source: tuple[int, int] | None = None) -> np.ndarray:
    """(T, 5) per frame: mouth centre x, y; eyes centre x, y; region side (pixels); raises no_face.
    ``source``: the full-resolution (h, w) the window's frames were scaled down from, where known: the
    smallest face worth finding is a share of that frame (see :func:`mmdf.prepare.faces.detect_scale`)."""
    keys = np.unique(np.linspace(0, len(frames) - 1, max(1, cfg.detect_frames)).round().astype(int))
    found = detector.detect(frames[keys], landmarks=True, source=source)
    track = track_main_face(found, faces.min_confidence, faces.track_iou)
    rows, at = [], []
    for t, hit in zip(keys, track):
        if hit is None or hit.points is None:
            continue
        pts, width = hit.points, float(hit.box[2] - hit.box[0])
        rows.append([*pts[3:5].mean(axis=0), *pts[0:2].mean(axis=0), width * cfg.mouth_scale])
        at.append(t)
    if not rows:
        raise MediaError("no_face", f"no face in any of the {len(keys)} frames looked at in the sync window")
    rows = np.asarray(rows)
    return np.stack([np.interp(np.arange(len(frames)), at, rows[:, j]) for j in range(5)], axis=1)


def region_crops(frames: np.ndarray, places: np.ndarray, cfg: SyncConfig) -> tuple[np.ndarray, np.ndarray]:
    """Grey mouth crops (T, S, S) uint8 and the artefact measures (T, 3) of each frame.

    The regions of all frames are cut first and measured together (colour
    conversions on the regions stacked into one image, one batched FFT): per
    frame, the calls' overhead cost more than their arithmetic.
    """
    import cv2

    def cut(x, y, side, frame):
        return _cut(frame, x - side / 2, y - side / 2, side, ARTEFACT_SIZE)

    mouth = np.stack([cut(mx, my, side, f) for f, (mx, my, _, _, side) in zip(frames, places)])
    upper = np.stack([cut(ex, ey, side, f) for f, (_, _, ex, ey, side) in zip(frames, places)])
    mouth_grey, upper_grey = (_converted(r, cv2.COLOR_RGB2GRAY)[..., 0] for r in (mouth, upper))
    size = (cfg.mouth_size, cfg.mouth_size)
    crops = np.stack([cv2.resize(g, size, interpolation=cv2.INTER_AREA) for g in mouth_grey])
    return crops, region_contrast(mouth, upper, mouth_grey, upper_grey)


def _converted(regions: np.ndarray, code: int) -> np.ndarray:
    """(T, A, A, C) ``cv2.cvtColor(code)`` of (T, A, A, 3) regions, in one call on them stacked into one image
    (a per-pixel conversion: the stacking changes nothing but the number of calls)."""
    import cv2

    t, a = regions.shape[:2]
    return cv2.cvtColor(regions.reshape(t * a, a, 3), code).reshape(t, a, a, -1)


@functools.cache
def _beyond_half_nyquist(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The half spectrum of a real (n, n) image as ``rfft2`` gives it: (n, n // 2 + 1) mask of the
    frequencies beyond half the Nyquist radius, and each column's weight (the columns that stand for
    their mirror image too count twice), so that sums over it are those over the full spectrum."""
    y, x = np.mgrid[:n, :n] - n / 2
    mask = np.fft.ifftshift(np.hypot(x, y) > n / 4)[:, : n // 2 + 1]
    weight = np.full(n // 2 + 1, 2.0)
    weight[0] = 1.0
    if n % 2 == 0:
        weight[-1] = 1.0
    return mask, weight


def region_contrast(mouth: np.ndarray, upper: np.ndarray, mouth_grey: np.ndarray, upper_grey: np.ndarray
                    ) -> np.ndarray:
    """The :data:`ARTEFACTS` (T, 3) of the frames' RGB regions (T, A, A, 3) and their grey (T, A, A): log
    ratios of sharpness and high-frequency share of the mouth against the upper face, their LAB distance."""
    import cv2
    from scipy import fft

    def sharp(grey):
        return np.array([cv2.Laplacian(g.astype(np.float32), cv2.CV_32F).var() for g in grey])

    def high(grey):
        spectrum = fft.rfft2(grey.astype(np.float32))  # single precision, half the spectrum: 10x faster
        mask, weight = _beyond_half_nyquist(grey.shape[1])
        power = (spectrum.real ** 2 + spectrum.imag ** 2) * weight.astype(np.float32)
        return power[:, mask].sum(axis=1) / np.maximum(power.sum(axis=(1, 2)), 1e-9)

    def lab(regions):
        return np.array([cv2.mean(region)[:3] for region in _converted(regions, cv2.COLOR_RGB2LAB)])

    eps = 1e-6
    out = np.stack([np.log((sharp(mouth_grey) + eps) / (sharp(upper_grey) + eps)),
                    np.log((high(mouth_grey) + eps) / (high(upper_grey) + eps)),
                    np.linalg.norm(lab(mouth) - lab(upper), axis=1)], axis=1)
    return out.astype(np.float32)


def frame_audio(path: str | Path, times: np.ndarray, fps: float, cfg: SyncConfig) -> tuple[np.ndarray, np.ndarray]:
    """Log-mel (T, n_mels) and loudness (T,) dB of each frame's interval ``[t_i, t_i + 1/fps)``."""
    import librosa

    origin = _audio_origin(path)
    first = max(0.0, float(times[0]) - origin)
    track = decode_audio(path, cfg.sample_rate, "soxr_hq", None, (first, float(times[-1]) - origin + 1 / fps))
    sr, hop = cfg.sample_rate, int(round(MEL_HOP_S * cfg.sample_rate))
    lo = np.maximum(0, np.round((times - origin - first) * sr).astype(int))  # frame i's first decoded sample
    hi = lo + int(round(sr / fps))
    y = np.pad(track.signal, (0, max(0, hi[-1] - len(track.signal))))
    power = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=4 * hop, hop_length=hop, n_mels=cfg.n_mels)
    centres = np.arange(power.shape[1]) * hop
    mel = np.stack([power[:, (centres >= a) & (centres < b)].mean(axis=1) for a, b in zip(lo, hi)])
    envelope = np.array([10 * np.log10(np.mean(y[a:b] ** 2) + 1e-10) for a, b in zip(lo, hi)])
    return np.log10(mel + 1e-10).astype(np.float32), envelope.astype(np.float32)


def _audio_origin(path: str | Path) -> float:
    """The audio stream's start on the container's clock (audio spans are counted from it)."""
    with open_without_video_probe(path) as container:
        if not container.streams.audio:
            raise MediaError("no_audio", "the clip has no audio track")
        stream = container.streams.audio[0]
        return float((stream.start_time or 0) * stream.time_base)
