"""The visual branch's input: crops of a clip's main face over K sampled frames.

Detection dominates the cost (MTCNN on a 1080p frame takes far longer than
decoding it), so frames are downscaled to ``detect_size`` before detection and
the boxes mapped back to full resolution, as the DFDC winners did; crops are
cut from the full-resolution frames. The main face is the most confident,
largest one; it is followed across frames by box overlap so that every crop of
a clip shows the same person even when several are in view.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mmdf.prepare.config import FaceConfig
from mmdf.prepare.media import index_video, read_frames, read_indexed_frames


@dataclass
class Detection:
    """Faces found in one frame, in full-resolution pixels: boxes (n, 4) x1,y1,x2,y2 and probs (n,);
    with ``landmarks=True``, MTCNN's five points (n, 5, 2): eyes, nose, mouth corners."""

    boxes: np.ndarray
    probs: np.ndarray
    points: np.ndarray | None = None


class FaceHit(NamedTuple):
    """The main face in one frame, full-resolution pixels: box (4,) x1,y1,x2,y2, MTCNN probability, and
    its five landmarks (5, 2) where they were asked for (None otherwise): the sync half's mouth places."""

    box: np.ndarray
    prob: float
    points: np.ndarray | None = None


@dataclass
class FaceResult:
    """Crops (N, S, S, 3) RGB uint8 of the main face, N = frames where it was found."""

    crops: np.ndarray
    frames_sampled: int
    frames_with_face: int
    conf_mean: float  # mean MTCNN probability of the main face over those frames; NaN when none
    boxes: np.ndarray  # (N, 4) full-resolution boxes of the crops
    frame_indices: np.ndarray  # (N,) clip frame index of each crop
    points: np.ndarray  # (N, 5, 2) float32 landmarks (eyes, nose, mouth corners); NaN where unknown


class FaceDetector:
    """MTCNN over batches of downscaled frames; create once per worker process (it loads weights)."""

    def __init__(self, cfg: FaceConfig, device: str = "cpu"):
        from facenet_pytorch import MTCNN  # deferred: torch and facenet-pytorch load where faces are detected

        self.cfg = cfg
        self.mtcnn = MTCNN(
            keep_all=True, min_face_size=cfg.min_face_size, thresholds=list(cfg.thresholds),
            device=device,
        )

    def detect(self, frames: np.ndarray, downscale: bool = True, landmarks: bool = False,
               source: tuple[int, int] | None = None) -> list[Detection]:
        """Detections for frames (N, H, W, 3) RGB uint8, at most ``batch_size`` frames per MTCNN call;
        ``downscale``: at :func:`detect_scale` (``source``: the full-resolution size they were cut from)."""
        import cv2
        import torch  # deferred (see __init__)

        if len(frames) == 0:
            return []
        height, width = frames.shape[1:3]
        scale, smallest = (1.0, self.cfg.min_face_size)
        if downscale:
            scale, smallest = detect_scale(height, width, self.cfg, source)
        self.mtcnn.min_face_size = smallest
        out: list[Detection] = []
        for start in range(0, len(frames), max(1, self.cfg.batch_size)):
            batch = frames[start : start + self.cfg.batch_size]
            if scale < 1.0:
                size = (max(1, round(width * scale)), max(1, round(height * scale)))
                batch = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in batch])
            with torch.inference_mode():
                found = self.mtcnn.detect(batch, landmarks=landmarks)
            points = found[2] if landmarks else [None] * len(batch)
            out += [_detection(b, p, q, scale) for b, p, q in zip(found[0], found[1], points)]
        return out


def detect_scale(height: int, width: int, cfg: FaceConfig, source: tuple[int, int] | None = None
                 ) -> tuple[float, float]:
    """(scale, smallest face in pixels at that scale): how (height, width) frames are shown to MTCNN.

    The scale is at least ``detect_size`` on the longer side (the cost bound the run was set up with),
    and large enough that the smallest face worth finding is ``min_face_size`` pixels there:
    ``min_face_share`` of the full-resolution frame's shorter side, but not smaller than the face a
    crop holds at its own resolution. ``source``: the (h, w) of the full-resolution frames these were
    cut down from (the sync half's), default these. A 256-pixel demo frame keeps the demo's scale
    (detect_size 128 and a 40-pixel face at 0.5 agree); a 1080p frame is seen at 0.37 instead of 0.07,
    where a face of 108 pixels (a tenth of the frame) is 40. The scale is at most 1: where the face rule asks for more,
    MTCNN looks for smaller faces instead (never under its 12-pixel window).
    """
    src_h, src_w = source or (height, width)
    shrink = max(height, width) / max(src_h, src_w)
    by_size = cfg.detect_size / max(height, width)
    smallest = max(cfg.min_face_share * min(src_h, src_w), cfg.crop_size / (1 + 2 * cfg.margin)) * shrink
    by_face = cfg.min_face_size / smallest
    # the face rule wins only where it asks for more (a rounding tie keeps the detect_size scale)
    scale = by_face if by_face > by_size * (1 + 1e-6) else by_size
    if scale <= 1:
        return scale, float(cfg.min_face_size)
    return 1.0, float(max(12.0, min(cfg.min_face_size, smallest)))


def _detection(boxes, probs, points, scale: float) -> Detection:
    """One frame's MTCNN output in full-resolution pixels (empty arrays where it found nothing)."""
    if boxes is None:
        return Detection(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                         None if points is None else np.zeros((0, 5, 2), np.float32))
    pts = None if points is None else (np.asarray(points) / scale).astype(np.float32)
    return Detection((np.asarray(boxes) / scale).astype(np.float32), np.asarray(probs, np.float32), pts)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box (4,) with boxes (n, 4)."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def track_main_face(
    detections: list[Detection], min_confidence: float = 0.9, track_iou: float = 0.2, max_seeds: int = 8
) -> list[FaceHit | None]:
    """Per frame, the main face's :class:`FaceHit` (with its landmarks where the detections have them) or None.

    Each confident face (the ``max_seeds`` largest x most probable) seeds a track
    followed forwards and backwards to the box that overlaps the last one found
    most (IoU >= ``track_iou``). The main face is the track with the largest
    sum of area x probability over its frames: the largest, most confident face,
    counted in every frame it is seen, so a person in view throughout wins over
    a one-frame false detection.
    """
    confident = []
    for det in detections:
        keep = det.probs >= min_confidence
        confident.append(Detection(det.boxes[keep], det.probs[keep], None if det.points is None else det.points[keep]))
    seeds = []
    for t, det in enumerate(confident):
        areas = (det.boxes[:, 2] - det.boxes[:, 0]) * (det.boxes[:, 3] - det.boxes[:, 1])
        seeds += [(float(a * p), t, i) for i, (a, p) in enumerate(zip(areas, det.probs))]
    best: list[FaceHit | None] = [None] * len(detections)
    best_rank = 0.0
    for _, t0, i0 in sorted(seeds, reverse=True)[:max_seeds]:
        track = _follow(confident, t0, i0, track_iou)
        rank = sum(float((h.box[2] - h.box[0]) * (h.box[3] - h.box[1]) * h.prob) for h in filter(None, track))
        if rank > best_rank:
            best, best_rank = track, rank
    return best


def _hit(det: Detection, i: int) -> FaceHit:
    return FaceHit(det.boxes[i], float(det.probs[i]), None if det.points is None else det.points[i])


def _follow(confident: list[Detection], t0: int, i0: int, track_iou: float) -> list[FaceHit | None]:
    track: list[FaceHit | None] = [None] * len(confident)
    track[t0] = _hit(confident[t0], i0)
    for direction in (range(t0 + 1, len(confident)), range(t0 - 1, -1, -1)):
        last = confident[t0].boxes[i0]
        for t in direction:
            det = confident[t]
            if not len(det.probs):
                continue
            ious = box_iou(last, det.boxes)
            i = int(np.argmax(ious))
            if ious[i] >= track_iou:
                track[t] = _hit(det, i)
                last = det.boxes[i]
    return track


def crop_face(frame: np.ndarray, box: np.ndarray, margin: float, size: int) -> np.ndarray:
    """Square crop (size, size, 3) around ``box`` widened by ``margin`` of its side on each side.

    Parts outside the frame are black, so the face keeps its aspect and place.
    """
    return _cut(frame, *square_region(box, 1 + 2 * margin), size)


def square_region(box: np.ndarray, scale: float) -> tuple[float, float, float]:
    """(x0, y0, side) of the square of ``scale`` box sides centred on ``box``."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = max(box[2] - box[0], box[3] - box[1]) * scale
    return cx - side / 2, cy - side / 2, side


def _neighbours(track: dict[int, FaceHit], t: int) -> tuple[int | None, int | None]:
    """The nearest frames of ``track`` before and after ``t`` (None where there is none)."""
    before = [k for k in track if k < t]
    after = [k for k in track if k > t]
    return (max(before) if before else None), (min(after) if after else None)


def _interpolate(track: dict[int, FaceHit], t: int) -> np.ndarray | None:
    a, b = _neighbours(track, t)
    if a is not None and b is not None:
        w = (t - a) / (b - a)
        return (1 - w) * track[a].box + w * track[b].box
    if a is not None or b is not None:
        return track[a if a is not None else b].box
    return None


def find_main_face(frames: np.ndarray, detector: FaceDetector, cfg: FaceConfig) -> list[FaceHit | None]:
    """Per frame (N, H, W, 3), the main face's :class:`FaceHit` (box, prob, landmarks) or None.

    Whole-frame detection runs on key frames only (every ``detect_every``-th and
    the last). Between two key frames whose boxes overlap by at least
    ``interpolate_iou`` (the head barely moved) the box is interpolated, as
    the DFDC winners did; elsewhere MTCNN looks only at a small region around
    the interpolated box, which costs a small fraction of a whole frame. A face found in no key frame is searched for in
    every frame, so a clip is called ``no_face`` only after a full search. MTCNN's five landmarks are
    kept (it computes them anyway) and interpolated like the boxes: the sync half places the mouth by them.
    """
    n = len(frames)
    step = max(1, cfg.detect_every)
    keys = sorted(set(range(0, n, step)) | {n - 1})
    key_track = track_main_face(detector.detect(frames[keys], landmarks=True), cfg.min_confidence, cfg.track_iou)
    track: dict[int, FaceHit] = {t: hit for t, hit in zip(keys, key_track) if hit is not None}
    others = [t for t in range(n) if t not in keys]
    if not others:
        return [track.get(t) for t in range(n)]
    if not track:  # nothing in the key frames: full search before calling it no_face
        return track_main_face(detector.detect(frames, landmarks=True), cfg.min_confidence, cfg.track_iou)
    steady = {t: hit for t in others if (hit := _steady(track, t, cfg.interpolate_iou)) is not None}
    others = [t for t in others if t not in steady]
    if others:
        _verify_in_regions(frames, track, others, detector, cfg)
    return [track.get(t) or steady.get(t) for t in range(n)]


def _verify_in_regions(frames: np.ndarray, track: dict[int, FaceHit], others: list[int], detector: FaceDetector,
                       cfg: FaceConfig) -> None:
    """Add to ``track`` the main face of each frame of ``others`` found in the region around its
    interpolated box (boxes and landmarks mapped back to full-resolution pixels). Each frame is matched
    against the track as the frames before it left it."""
    regions, rois = [], []
    for t in others:
        x0, y0, side = square_region(_interpolate(track, t), cfg.roi_scale)
        regions.append((t, x0, y0, side))
        rois.append(_cut(frames[t], x0, y0, side, cfg.roi_size))
    for (t, x0, y0, side), det in zip(regions, detector.detect(np.stack(rois), downscale=False, landmarks=True)):
        keep = det.probs >= cfg.min_confidence
        if not keep.any():
            continue
        boxes = det.boxes[keep] * (side / cfg.roi_size) + np.array([x0, y0, x0, y0], dtype=np.float32)
        ious = box_iou(_interpolate(track, t), boxes)
        i = int(np.argmax(ious))
        if ious[i] >= cfg.track_iou:
            points = None if det.points is None else det.points[keep][i] * (side / cfg.roi_size) + np.float32([x0, y0])
            track[t] = FaceHit(boxes[i], float(det.probs[keep][i]), points)


def _steady(track: dict[int, FaceHit], t: int, min_iou: float) -> FaceHit | None:
    """The interpolated hit at ``t`` when the key frames around it agree, else None; its landmarks are
    interpolated as the box is, where both key frames have them."""
    a, b = _neighbours(track, t)
    if min_iou > 1 or a is None or b is None:
        return None
    hit_a, hit_b = track[a], track[b]
    if box_iou(hit_a.box, hit_b.box[None])[0] < min_iou:
        return None
    points = None
    if hit_a.points is not None and hit_b.points is not None:
        w = (t - a) / (b - a)
        points = (1 - w) * hit_a.points + w * hit_b.points
    return FaceHit(_interpolate(track, t), min(hit_a.prob, hit_b.prob), points)


def _cut(frame: np.ndarray, x0: float, y0: float, side: float, size: int) -> np.ndarray:
    """The square (x0, y0, side) of ``frame``, black outside it, resized to (size, size, 3)."""
    import cv2

    x1, y1, n = int(round(x0)), int(round(y0)), max(1, int(round(side)))
    h, w = frame.shape[:2]
    canvas = np.zeros((n, n, 3), dtype=np.uint8)
    fx1, fy1, fx2, fy2 = max(x1, 0), max(y1, 0), min(x1 + n, w), min(y1 + n, h)
    if fx2 > fx1 and fy2 > fy1:
        canvas[fy1 - y1 : fy2 - y1, fx1 - x1 : fx2 - x1] = frame[fy1:fy2, fx1:fx2]
    interp = cv2.INTER_AREA if n > size else cv2.INTER_LINEAR
    return cv2.resize(canvas, (size, size), interpolation=interp)


def faces_from_frames(
    frames: np.ndarray, indices: np.ndarray, detector: FaceDetector, cfg: FaceConfig
) -> FaceResult:
    """Detect, follow and crop the main face in already decoded frames (N, H, W, 3)."""
    track = find_main_face(frames, detector, cfg)
    found = [t for t, hit in enumerate(track) if hit is not None]
    crops = np.zeros((len(found), cfg.crop_size, cfg.crop_size, 3), dtype=np.uint8)
    for j, t in enumerate(found):
        crops[j] = crop_face(frames[t], track[t].box, cfg.margin, cfg.crop_size)
    probs = [track[t].prob for t in found]
    unknown = np.full((5, 2), np.nan, np.float32)
    return FaceResult(
        crops=crops,
        frames_sampled=len(frames),
        frames_with_face=len(found),
        conf_mean=float(np.mean(probs)) if probs else float("nan"),
        boxes=np.array([track[t].box for t in found], dtype=np.float32).reshape(-1, 4),
        frame_indices=np.asarray(indices)[found],
        points=np.array([unknown if track[t].points is None else track[t].points for t in found],
                        dtype=np.float32).reshape(-1, 5, 2),
    )


def prepare_clip_faces(path: str | Path, cfg: FaceConfig, detector: FaceDetector | None = None) -> FaceResult:
    """Face crops of one clip (K frames sampled by seeking); raises ``MediaError`` when undecodable."""
    detector = detector or FaceDetector(cfg)
    frames, indices = read_frames(path, cfg.num_frames, cfg.skip_nonref)
    return faces_from_frames(frames, indices, detector, cfg)


_DETECTORS: dict[str, FaceDetector] = {}


def timed_faces(path: str | Path, cfg: FaceConfig, span: tuple[float, float] | None = None
                ) -> tuple[FaceResult, np.ndarray, float]:
    """The face half of one clip made again as `mmdf prepare` made it, with each crop's time (seconds on
    the container's clock) and one frame's duration: the cache keeps the crops, not when they were seen.

    For a clip's timeline, not for training; one detector per face config is kept for the next call.
    """
    if repr(cfg) not in _DETECTORS:
        _DETECTORS[repr(cfg)] = FaceDetector(cfg)
    detector = _DETECTORS[repr(cfg)]
    index = index_video(path, span)
    frames, indices = read_indexed_frames(path, index, cfg.num_frames, cfg.skip_nonref)
    faces = faces_from_frames(frames, indices, detector, cfg)
    step = np.diff(np.sort(index.targets.astype(np.float64))) if len(index.targets) > 1 else np.zeros(0)
    frame_s = float(np.median(step) * index.time_base) if len(step) and index.time_base else 0.04
    return faces, index.times(faces.frame_indices), frame_s
