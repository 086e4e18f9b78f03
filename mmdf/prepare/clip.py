"""One clip in, one manifest row out: both features cached, every problem turned into a status.

Nothing raised while decoding a clip escapes :func:`process_clip`; it becomes
the clip's status and error message, so one bad file never stops a run.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from mmdf.prepare.audio import prepare_clip_audio
from mmdf.prepare.cache import KIND_FIELDS, feature_relpath, link_feature, save_array, source_fingerprint
from mmdf.prepare.config import PrepareConfig
from mmdf.prepare.faces import FaceDetector, prepare_clip_faces
from mmdf.prepare.media import MediaError, probe

# A clip's overall status is its first problem in this order.
STATUS_ORDER = ("missing", "corrupt", "too_short", "no_audio", "no_face")


@dataclass
class ClipTask:
    split: str
    video_name: str
    path: str
    stem: str  # feature file stem (see cache.clip_stem)
    # kind ('mel'/'faces') -> (donor cache root, its journal row): that half is linked, not computed
    borrow: dict | None = None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MediaError):
        return str(exc)
    last = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" (at {Path(last.filename).name}:{last.lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"[:500]


def overall_status(audio_status: str, visual_status: str) -> str:
    for status in STATUS_ORDER:
        if status in (audio_status, visual_status):
            return status
    return "ok"


def empty_row(task: ClipTask, status: str, error: str) -> dict:
    """A row for a clip whose features could not be made at all (missing or unreadable)."""
    return {
        "split": task.split, "video_name": task.video_name, "status": status, "error": error,
        "audio_status": status, "visual_status": status,
        "duration": float("nan"), "has_audio": False, "frames_sampled": 0, "frames_with_face": 0,
        "face_conf_mean": float("nan"), "mel_file": "", "faces_file": "", "prepared_at": time.time(),
        "source": source_fingerprint(task.path),
    }


def process_clip(task: ClipTask, cfg: PrepareConfig, detector: FaceDetector, root: Path) -> dict:
    """Make and cache the mel image and face crops of one clip; return its journal row.

    Feature paths in the row are relative to the cache ``root``.
    """
    try:
        info = probe(task.path)
    except MediaError as exc:
        return empty_row(task, exc.status, str(exc))
    except Exception as exc:  # noqa: BLE001 - any failure is this clip's, not the run's
        return empty_row(task, "corrupt", _describe(exc))

    row = empty_row(task, "ok", "")
    row.update(duration=round(info.duration, 4), has_audio=info.has_audio)
    errors: list[str] = []

    # audio branch
    if not info.has_audio:
        row["audio_status"] = "no_audio"
        errors.append("audio: the clip has no audio track")
    elif info.audio_duration < cfg.min_duration:
        row["audio_status"] = "too_short"
        errors.append(f"audio: {info.audio_duration:.3f} s, shorter than prepare.min_duration={cfg.min_duration}")
    elif "mel" in (task.borrow or {}):
        _borrow(task, "mel", root, row, errors)
    else:
        try:
            mel = prepare_clip_audio(task.path, cfg.mel)
            rel = feature_relpath("mel", task.split, task.stem)
            save_array(root / rel, mel)
            row.update(audio_status="ok", mel_file=rel)
        except Exception as exc:  # noqa: BLE001
            row["audio_status"] = exc.status if isinstance(exc, MediaError) else "corrupt"
            errors.append(f"audio: {_describe(exc)}")

    # visual branch
    if not info.has_video:
        row["visual_status"] = "corrupt"
        errors.append("video: the clip has no video stream")
    elif info.video_duration < cfg.min_duration:
        row["visual_status"] = "too_short"
        errors.append(f"video: {info.video_duration:.3f} s, shorter than prepare.min_duration={cfg.min_duration}")
    elif "faces" in (task.borrow or {}):
        _borrow(task, "faces", root, row, errors)
    else:
        try:
            faces = prepare_clip_faces(task.path, cfg.faces, detector)
            row.update(frames_sampled=faces.frames_sampled, frames_with_face=faces.frames_with_face)
            if faces.frames_with_face == 0:
                row["visual_status"] = "no_face"
                errors.append(f"video: no face in any of {faces.frames_sampled} sampled frames")
            else:
                rel = feature_relpath("faces", task.split, task.stem)
                save_array(root / rel, faces.crops)
                row.update(visual_status="ok", faces_file=rel, face_conf_mean=round(faces.conf_mean, 5))
        except Exception as exc:  # noqa: BLE001
            row["visual_status"] = exc.status if isinstance(exc, MediaError) else "corrupt"
            errors.append(f"video: {_describe(exc)}")

    row["status"] = overall_status(row["audio_status"], row["visual_status"])
    row["error"] = "; ".join(errors)
    row["prepared_at"] = time.time()
    return row


def _borrow(task: ClipTask, kind: str, root: Path, row: dict, errors: list[str]) -> None:
    """Take one half of the features from a cache made with the same parameters for that half."""
    donor_root, donor = task.borrow[kind]
    for field in KIND_FIELDS[kind]:
        row[field] = donor.get(field)
    if donor.get(f"{kind}_file"):
        rel = feature_relpath(kind, task.split, task.stem)
        link_feature(Path(donor_root) / donor[f"{kind}_file"], root / rel)
        row[f"{kind}_file"] = rel
    prefix = "audio: " if kind == "mel" else "video: "
    errors += [e for e in (donor.get("error") or "").split("; ") if e.startswith(prefix)]


# --------------------------------------------------------------------------- worker process state

_WORKER: dict = {}


def init_worker(cfg: PrepareConfig, root: str) -> None:
    """Pool initializer: one thread per process, one MTCNN per process (weights load once)."""
    set_worker_state(cfg, root, threads=1)


def set_worker_state(cfg: PrepareConfig, root: str | Path, threads: int | None) -> None:
    """Settings and detector for :func:`run_task` in this process; the detector is reused when unchanged."""
    if threads is not None:
        import cv2
        import torch

        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
    _WORKER["cfg"] = cfg
    _WORKER["root"] = Path(root)
    key = (repr(cfg.faces), cfg.device)
    if _WORKER.get("detector_key") != key:
        _WORKER["detector"] = FaceDetector(cfg.faces, device=cfg.device)
        _WORKER["detector_key"] = key


def run_task(task: ClipTask) -> dict:
    """Entry point in a worker process; never raises for a clip's own problems."""
    try:
        return process_clip(task, _WORKER["cfg"], _WORKER["detector"], _WORKER["root"])
    except Exception as exc:  # noqa: BLE001 - last resort: a bug must not kill the run either
        return empty_row(task, "corrupt", f"unexpected error: {_describe(exc)}")
