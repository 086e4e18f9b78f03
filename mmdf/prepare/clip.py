"""One clip in, one manifest row out: both features cached, every problem turned into a status.

Nothing raised while decoding a clip escapes :func:`process_clip`; it becomes
the clip's status and error message, so one bad file never stops a run.

The two halves (audio -> mel image, video -> face crops) go through the same
steps: a missing stream (``no_audio`` / ``no_video``), one too short within
the used span (``too_short``), a half lent by a sibling cache, or the work
itself. A clip longer than ``prepare.max_duration`` is represented by its
middle ``max_duration`` seconds (``span_start``/``span_end``). A stream that
stops short of what its container declares is truncated: with
``prepare.truncated: skip`` that half's status is ``truncated`` and it has no
features; with ``use`` its features are made from what decoded (audio not
padded), its own status says how that went (``ok``, ``no_face``) and only the
overall ``status`` says ``truncated``. ``audio_share``/``video_share`` hold
the share of the span that decoded. Durations are compared per stream, so a
container whose audio track is legitimately shorter than its video is not
truncated.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from mmdf.files import pid_alive
from mmdf.prepare.audio import mel_image
from mmdf.prepare.cache import feature_relpath, link_feature, save_array, save_arrays, source_fingerprint
from mmdf.prepare.config import PrepareConfig
from mmdf.prepare.faces import FaceDetector, FaceResult, faces_from_frames
from mmdf.prepare.media import (
    MediaError, StreamInfo, VideoIndex, decode_audio, fit_length, index_video, is_truncated, no_samples, probe,
    read_indexed_frames, reference_length, used_span,
)
from mmdf.prepare.mouth import MouthAnchors, SyncTrack, mouth_track, with_audio_of
from mmdf.prepare.row import FEATURE_FILES, KIND_FIELDS, STATUS_ORDER, ManifestRow  # noqa: F401 - STATUS_ORDER
from mmdf.prepare.store import save_crops


@dataclass
class ClipTask:
    split: str
    video_name: str
    path: str
    stem: str  # feature file stem (see cache.clip_stem)
    # kind ('mel'/'faces') -> (donor cache root, its journal row): that half is linked, not computed
    borrow: dict | None = None


@dataclass
class _Job:
    """Everything one half of one clip needs; ``anchors``: what the face half leaves for the sync half."""

    task: ClipTask
    info: StreamInfo
    span: tuple[float, float]
    cfg: PrepareConfig
    detector: FaceDetector | None
    root: Path
    anchors: MouthAnchors | None = None  # the main face's landmarks where the face half found it

    @property
    def trimmed(self) -> tuple[float, float] | None:
        """The span when it is not the whole clip (decoding then seeks and stops)."""
        return None if self.span == (0.0, self.info.duration) else self.span


@dataclass
class _Outcome:
    """What one half sets in the row, its message, and whether its stream stopped short."""

    fields: dict
    note: str = ""
    truncated: bool = False


@dataclass(frozen=True)
class _Half:
    kind: str  # 'mel' or 'faces'
    label: str  # prefix of its messages
    status: str  # its status field
    absent: str  # status when the clip lacks the stream
    absent_note: str
    has: Callable[[StreamInfo], bool] = field(compare=False)
    seconds: Callable[[StreamInfo], float] = field(compare=False)


AUDIO = _Half("mel", "audio", "audio_status", "no_audio", "the clip has no audio track",
              lambda i: i.has_audio, lambda i: i.audio_duration)
VIDEO = _Half("faces", "video", "visual_status", "no_video", "the clip has no video stream (audio only)",
              lambda i: i.has_video, lambda i: i.video_duration)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MediaError):
        return str(exc)
    last = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" (at {Path(last.filename).name}:{last.lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"[:500]


def empty_row(task: ClipTask, status: str, error: str) -> ManifestRow:
    """A row for a clip whose features could not be made at all (missing or unreadable)."""
    row = ManifestRow.failed(task.split, task.video_name, status, error, source_fingerprint(task.path))
    row.prepared_at = time.time()
    return row


def process_clip(task: ClipTask, cfg: PrepareConfig, detector: FaceDetector | None, root: Path) -> ManifestRow:
    """Make and cache the mel image and face crops of one clip; return its journal row.

    Feature paths in the row are relative to the cache ``root``.
    """
    try:
        info = probe(task.path)
    except Exception as exc:  # noqa: BLE001 - any failure is this clip's, not the run's
        return empty_row(task, exc.status if isinstance(exc, MediaError) else "corrupt", _describe(exc))
    span = used_span(info.duration, cfg.max_duration)
    row = ManifestRow(task.split, task.video_name, duration=round(info.duration, 4), has_audio=info.has_audio,
                      span_start=round(span[0], 4), span_end=round(span[1], 4), source=source_fingerprint(task.path))
    job = _Job(task, info, span, cfg, detector, Path(root))
    notes, truncated = [], False
    halves = ((AUDIO.label, lambda: _run_half(job, AUDIO, _make_mel)),
              (VIDEO.label, lambda: _run_half(job, VIDEO, _make_faces)), ("sync", lambda: _run_sync(job)))
    for label, run in halves:
        outcome = run()
        for name, value in outcome.fields.items():
            setattr(row, name, value)
        notes += [f"{label}: {outcome.note}"] if outcome.note else []
        truncated |= outcome.truncated
    row.status = row.overall_status(truncated)
    row.error = "; ".join(notes)
    row.prepared_at = time.time()
    return row


def _run_half(job: _Job, half: _Half, make: Callable[[_Job], _Outcome]) -> _Outcome:
    """The steps both halves share: stream present, long enough, borrowed, else made (errors become statuses)."""
    in_span = max(0.0, min(half.seconds(job.info), job.span[1]) - job.span[0])
    if not half.has(job.info):
        return _Outcome({half.status: half.absent}, half.absent_note)
    if in_span < job.cfg.min_duration:
        where = f" within the used span {job.span[0]:.1f}-{job.span[1]:.1f} s" if job.trimmed else ""
        return _Outcome({half.status: "too_short"},
                        f"{in_span:.3f} s{where}, shorter than prepare.min_duration={job.cfg.min_duration}")
    if half.kind in (job.task.borrow or {}):
        return _borrowed(job, half, in_span)
    try:
        return make(job)
    except Exception as exc:  # noqa: BLE001
        return _Outcome({half.status: exc.status if isinstance(exc, MediaError) else "corrupt"}, _describe(exc))


def _run_sync(job: _Job) -> _Outcome:
    """The sync half: both streams present (the halves above already said which one is not), else made."""
    if not (job.info.has_audio and job.info.has_video):
        return _Outcome({"sync_status": "no_audio" if not job.info.has_audio else "no_video"})
    try:
        return _make_sync(job)
    except Exception as exc:  # noqa: BLE001
        return _Outcome({"sync_status": exc.status if isinstance(exc, MediaError) else "corrupt"}, _describe(exc))


def _make_sync(job: _Job) -> _Outcome:
    """Cache the mouth and audio of the sync window (see mmdf.prepare.mouth).

    With a lent ``sync`` half (a file whose video stream is this one's), its
    mouth crops are taken and only the audio of the same frames is made anew.
    Otherwise the mouth is placed by the landmarks the face half left in ``job.anchors`` where they
    cover the window (none where it failed or found no face: then MTCNN looks again). A face half
    lent by a sibling cache carries crops, not landmarks: they are found again (the detection, not
    the crops), so that a clip's sync features never depend on whether its face half was lent.
    """
    lent = (job.task.borrow or {}).get("sync")
    if lent is not None:
        donor = SyncTrack.load(Path(lent[0]) / lent[1]["sync_file"])
        track = with_audio_of(donor, job.task.path, job.cfg.sync)
    else:
        lent_faces = (job.task.borrow or {}).get("faces")
        if job.anchors is None and lent_faces is not None and lent_faces[1].get("visual_status") == "ok":
            _find_faces(job, index_video(job.task.path, job.trimmed))
        track = mouth_track(job.task.path, job.span, job.cfg.sync, job.cfg.faces, job.detector, job.anchors)
    rel = feature_relpath("sync", job.task.split, job.task.stem)
    save_arrays(job.root / rel, **track.arrays(job.cfg.faces.codec, job.cfg.faces.quality))
    return _Outcome({"sync_status": "ok", "sync_file": rel})


def _cut_short(job: _Job, half: _Half, decoded: float) -> tuple[bool, float, str]:
    """(truncated, share decoded, message) of a stream that decoded ``decoded`` seconds of the span."""
    expected = max(0.0, min(half.seconds(job.info), job.span[1]) - job.span[0])
    share = round(min(1.0, decoded / expected), 4) if expected > 0 else float("nan")
    if not is_truncated(decoded, expected, job.cfg.truncated_tolerance):
        return False, share, ""
    use = job.cfg.truncated == "use"
    return True, share, (
        f"truncated: {decoded:.2f} of {expected:.2f} s decoded ({share:.0%}), "
        + ("features made from what decoded (prepare.truncated=use)" if use
           else "no features (prepare.truncated=skip), a download cut short?")
    )


def _make_mel(job: _Job) -> _Outcome:
    """Decode the span's audio, check it is whole, cache its mel image."""
    mel_cfg = job.cfg.mel
    track = decode_audio(job.task.path, mel_cfg.sample_rate, mel_cfg.resample_quality, mel_cfg.via_rate, job.trimmed)
    cut, share, note = _cut_short(job, AUDIO, track.decoded)
    if track.tail_error and not cut:
        raise MediaError("corrupt", f"audio decoding failed: {track.tail_error}")
    if cut and (job.cfg.truncated == "skip" or not len(track.signal)):
        return _Outcome({"audio_status": "truncated", "audio_share": share}, note, truncated=True)
    if not len(track.signal):
        raise no_samples(job.trimmed)
    signal = track.signal
    if mel_cfg.pad_to_container and not cut:
        length = round((job.span[1] - job.span[0]) * track.rate) if job.trimmed else None
        signal = fit_length(signal, length or reference_length(track.container_us, track.rate))
    rel = feature_relpath("mel", job.task.split, job.task.stem)
    save_array(job.root / rel, mel_image(signal, mel_cfg))
    return _Outcome({"audio_status": "ok", "mel_file": rel, "audio_share": share}, note, truncated=cut)


def _make_faces(job: _Job) -> _Outcome:
    """Index the span's video packets, check it is whole, sample frames, cache the main face's crops."""
    index = index_video(job.task.path, job.trimmed)
    cut, share, note = (False, float("nan"), "") if not index.timestamps else _cut_short(job, VIDEO, index.decoded())
    if cut and (job.cfg.truncated == "skip" or not len(index.targets)):
        return _Outcome({"visual_status": "truncated", "video_share": share}, note, truncated=True)
    faces = _find_faces(job, index)
    fields = {"frames_sampled": faces.frames_sampled, "frames_with_face": faces.frames_with_face, "video_share": share}
    notes = [note] if note else []
    if faces.frames_with_face == 0:
        notes.append(f"no face in any of {faces.frames_sampled} sampled frames")
        return _Outcome({**fields, "visual_status": "no_face"}, "; video: ".join(notes), truncated=cut)
    rel = feature_relpath("faces", job.task.split, job.task.stem)
    save_crops(job.root / rel, faces.crops, job.cfg.faces.codec, job.cfg.faces.quality)
    fields.update(visual_status="ok", faces_file=rel, face_conf_mean=round(faces.conf_mean, 5))
    return _Outcome(fields, note, truncated=cut)


def _find_faces(job: _Job, index: VideoIndex) -> FaceResult:
    """Sample the frames, find and crop the main face; its landmarks are left in ``job.anchors``."""
    faces_cfg = job.cfg.faces
    frames, indices = read_indexed_frames(job.task.path, index, faces_cfg.num_frames, faces_cfg.skip_nonref)
    faces = faces_from_frames(frames, indices, job.detector, faces_cfg)
    job.anchors = _anchors(faces, index, frames.shape[1:3])
    return faces


def _anchors(faces: FaceResult, index: VideoIndex, frame_size: tuple[int, int]) -> MouthAnchors:
    """The face half's main face for the sync half (its frames' times on the container's clock)."""
    return MouthAnchors.of(faces, index.times(faces.frame_indices), frame_size)


def _borrowed(job: _Job, half: _Half, in_span: float) -> _Outcome:
    """Take one half of the features from a cache made with the same parameters for that half."""
    donor_root, donor = job.task.borrow[half.kind]
    fields = {name: donor.get(name) for name in KIND_FIELDS[half.kind]}
    file_field = FEATURE_FILES[half.kind]
    if donor.get(file_field):
        rel = feature_relpath(half.kind, job.task.split, job.task.stem)
        link_feature(Path(donor_root) / donor[file_field], job.root / rel)
        fields[file_field] = rel
    prefix = f"{half.label}: "
    notes = [e[len(prefix):] for e in (donor.get("error") or "").split("; ") if e.startswith(prefix)]
    share = donor.get(f"{half.label}_share")
    cut = isinstance(share, float) and is_truncated(share * in_span, in_span, job.cfg.truncated_tolerance)
    return _Outcome(fields, f"; {half.label}: ".join(notes), truncated=cut)


# --------------------------------------------------------------------------- worker process state

_WORKER: dict = {}


def init_worker(cfg: PrepareConfig, root: str, parent_pid: int | None = None) -> None:
    """Pool initializer: die with the parent, one thread per process, one MTCNN per process (weights load once)."""
    if parent_pid is not None:
        die_with_parent(parent_pid)
    set_worker_state(cfg, root, threads=1)


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to kill this process when its parent dies (``prctl(PR_SET_PDEATHSIG, SIGKILL)``).

    Workers come from a fork server whose parent is ``mmdf prepare``; both
    ask this (see :mod:`mmdf.prepare.forkserver_guard`), so killing
    ``mmdf prepare`` kills the server and the server's death its workers,
    instead of leaving them holding gigabytes. A parent already gone before
    the call is caught by checking its pid.
    """
    import signal
    import sys

    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)

    if not pid_alive(parent_pid) or os.getppid() == 1:
        os._exit(1)


def set_worker_state(cfg: PrepareConfig, root: str | Path, threads: int | None) -> None:
    """Settings and detector for :func:`run_task` in this process; the detector is reused when unchanged."""
    if threads is not None:
        import cv2
        import torch  # deferred: only a worker that sets its thread count needs torch

        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
    _WORKER["cfg"] = cfg
    _WORKER["root"] = Path(root)
    key = (repr(cfg.faces), cfg.device)
    if _WORKER.get("detector_key") != key:
        _WORKER["detector"] = FaceDetector(cfg.faces, device=cfg.device)
        _WORKER["detector_key"] = key


def run_task(task: ClipTask) -> ManifestRow:
    """Entry point in a worker process; never raises for a clip's own problems."""
    try:
        return process_clip(task, _WORKER["cfg"], _WORKER["detector"], _WORKER["root"])
    except Exception as exc:  # noqa: BLE001 - last resort: a bug must not kill the run either
        return empty_row(task, "corrupt", f"unexpected error: {_describe(exc)}")


def task_borrow(record: dict) -> dict | None:
    """The ``borrow`` of a :class:`ClipTask` from a todo row's ``borrow_<kind>`` JSON cells (see cache.attach_donors)."""
    out = {}
    for kind in FEATURE_FILES:
        cell = record.get(f"borrow_{kind}")
        if isinstance(cell, str):
            lent = json.loads(cell)
            out[kind] = (lent["root"], lent["row"])
    return out or None
