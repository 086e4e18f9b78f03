"""Benchmark of preprocessing against the naive routes it replaces (run by tools/bench_prepare.py).

Per-core figures run in this process with one thread for torch, OpenCV and
BLAS; the whole-dataset figure runs `mmdf prepare` with every core.

- audio: mmdf (PyAV in memory, soxr) vs the reference route (moviepy writes a
  WAV, librosa.load reads it), both followed by the same mel recipe;
- faces: mmdf (K frames by seeking, key-frame detection at reduced scale,
  tracking) vs the naive route (decord decodes the K frames, MTCNN on each at
  half resolution), with the agreement of the main face found by both;
- the whole `mmdf prepare` of a dataset: clips/s and peak memory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

REALDATA_1080P = Path("../shared/realdata/street_faces_1080p.mp4")


def _single_thread() -> None:
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def reference_mel(path: str | Path, n_mels: int = 128, target_size=(256, 256)) -> np.ndarray:
    """The FFDV notebook's ``generate_mel_spectrogram``: moviepy to a WAV file, then librosa."""
    import cv2
    import librosa
    from moviepy import VideoFileClip

    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "extracted_audio.wav")
        video = VideoFileClip(str(path))
        video.audio.write_audiofile(wav, logger=None)
        video.close()
        y, sr = librosa.load(wav)
    S = librosa.feature.melspectrogram(y=y, sr=sr, n_mels=n_mels)
    S_dB = librosa.power_to_db(S, ref=np.max)
    S_n = cv2.normalize(S_dB, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return cv2.resize(S_n, target_size, interpolation=cv2.INTER_LINEAR)


def bench_audio(paths: list[Path], mel_cfg) -> dict:
    from mmdf.prepare.audio import prepare_clip_audio

    prepare_clip_audio(paths[0], mel_cfg)  # warm imports
    t0 = time.perf_counter()
    ours = [prepare_clip_audio(p, mel_cfg) for p in paths]
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    refs = [reference_mel(p, mel_cfg.n_mels, (mel_cfg.image_size, mel_cfg.image_size)) for p in paths]
    t_ref = time.perf_counter() - t0
    mad = [float(np.abs(a.astype(int) - b.astype(int)).mean()) for a, b in zip(ours, refs)]
    return {
        "clips": len(paths),
        "mmdf_clips_per_s": len(paths) / t_ours,
        "reference_clips_per_s": len(paths) / t_ref,
        "speedup": t_ref / t_ours,
        "mean_abs_diff_grey_levels_max": max(mad),
    }


def _naive_faces(path: Path, k: int, mtcnn, min_confidence: float) -> tuple[list, int]:
    """decord decodes the K frames; MTCNN on each at half resolution; per frame the largest confident face."""
    import cv2

    from mmdf.prepare.media import read_frames_decord

    frames, indices = read_frames_decord(path, k)
    boxes = []
    for frame in frames:
        h, w = frame.shape[:2]
        b, p = mtcnn.detect(cv2.resize(frame, (w // 2, h // 2), interpolation=cv2.INTER_AREA))
        if b is None or not (p >= min_confidence).any():
            boxes.append(None)
            continue
        b, p = np.asarray(b)[p >= min_confidence] * 2, p[p >= min_confidence]
        boxes.append(b[np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) * p)])
    return list(zip(indices.tolist(), boxes)), len(frames)


def bench_faces(paths: list[Path], face_cfg, label: str, repeats: int = 1) -> dict:
    from facenet_pytorch import MTCNN

    from mmdf.prepare.faces import FaceDetector, box_iou, prepare_clip_faces

    face_cfg = dataclasses.replace(face_cfg, num_frames=16)
    detector = FaceDetector(face_cfg)
    naive = MTCNN(keep_all=True, device="cpu")
    prepare_clip_faces(paths[0], face_cfg, detector)  # warm up both
    _naive_faces(paths[0], 16, naive, face_cfg.min_confidence)
    t_ours = t_naive = 0.0
    frames_ours = frames_naive = 0
    ious, found_ours, found_naive = [], 0, 0
    for _ in range(repeats):
        for path in paths:
            t0 = time.perf_counter()
            res = prepare_clip_faces(path, face_cfg, detector)
            t_ours += time.perf_counter() - t0
            t0 = time.perf_counter()
            naive_boxes, n = _naive_faces(path, 16, naive, face_cfg.min_confidence)
            t_naive += time.perf_counter() - t0
            frames_ours += res.frames_sampled
            frames_naive += n
            found_ours += res.frames_with_face
            found_naive += sum(b is not None for _, b in naive_boxes)
            by_index = dict(naive_boxes)
            for i, box in zip(res.frame_indices.tolist(), res.boxes):
                if by_index.get(i) is not None:
                    ious.append(float(box_iou(box, by_index[i][None].astype(np.float32))[0]))
    clips = len(paths) * repeats
    return {
        "data": label,
        "clips": clips,
        "mmdf_clips_per_s": clips / t_ours,
        "mmdf_frames_per_s": frames_ours / t_ours,
        "naive_clips_per_s": clips / t_naive,
        "naive_frames_per_s": frames_naive / t_naive,
        "speedup": t_naive / t_ours,
        "frames_with_face_mmdf": found_ours,
        "frames_with_face_naive": found_naive,
        "same_main_face_share": float(np.mean([x > 0.5 for x in ious])) if ious else float("nan"),
        "main_face_iou_mean": float(np.mean(ious)) if ious else float("nan"),
    }


def bench_full_prepare(cfg, cache_dir: Path) -> dict:
    """The whole `mmdf prepare` with every core, into a fresh cache."""
    from mmdf.prepare.runner import prepare_dataset, resolve_workers

    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, cache_dir=str(cache_dir)))
    t0 = time.perf_counter()
    manifest = prepare_dataset(cfg, force=True)
    seconds = time.perf_counter() - t0
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "clips": len(manifest),
        "workers": resolve_workers(cfg.prepare.workers),
        "seconds": seconds,
        "clips_per_s": len(manifest) / seconds,
        "statuses": manifest["status"].value_counts().to_dict(),
        "peak_rss_worker_mib": children,
    }


def run_benchmark(cfg, demo_cfg, n_demo: int = 20, full: bool = True, cache_dir: Path | None = None) -> dict:
    """All measurements in one run; ``cfg`` gives the full-size feature settings, ``demo_cfg`` the demo dataset."""
    from mmdf.data.labels import load_dataset

    _single_thread()
    demo = load_dataset(demo_cfg.data, missing="keep")
    demo_paths = [Path(p) for p in demo["path"][: 4 * n_demo]]
    demo_paths = [p for p in demo_paths if p.stat().st_size > 0][:n_demo]
    real = [p for p in sorted(REALDATA_1080P.parent.glob("*.mp4")) if p.name != "corrupted.mp4"]
    results: dict = {"machine": f"{os.cpu_count()} CPU cores", "config": {}}
    results["audio"] = {
        "demo": bench_audio([p for p in demo_paths if _has_audio(p)], cfg.prepare.mel),
        "realdata_1080p": bench_audio(real, cfg.prepare.mel),
    }
    results["faces"] = {
        "demo": bench_faces(demo_paths, demo_cfg.prepare.faces, f"{len(demo_paths)} demo clips, demo face settings"),
        "street_1080p": bench_faces([REALDATA_1080P], cfg.prepare.faces, REALDATA_1080P.name, repeats=2),
        "realdata_1080p": bench_faces(real, cfg.prepare.faces, "the 3 shared 1080p clips"),
    }
    results["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if full:
        with tempfile.TemporaryDirectory() as tmp:
            results["prepare_demo"] = bench_full_prepare(demo_cfg, Path(cache_dir or tmp))
    return results


def _has_audio(path: Path) -> bool:
    from mmdf.prepare.media import probe

    try:
        info = probe(path)
    except Exception:  # noqa: BLE001
        return False
    return info.has_audio and info.audio_duration >= 0.5


def format_table(results: dict) -> str:
    lines = [f"{'measure':<44} {'mmdf':>10} {'naive/ref':>10} {'ratio':>7}"]
    for name, r in results["audio"].items():
        label = f"audio clips/s, 1 core, {name} ({r['clips']})"
        lines.append(
            f"{label:<44} {r['mmdf_clips_per_s']:>10.2f} "
            f"{r['reference_clips_per_s']:>10.2f} {r['speedup']:>6.1f}x"
        )
    for name, r in results["faces"].items():
        label = f"faces clips/s, K=16, 1 core, {name}"
        lines.append(
            f"{label:<44} {r['mmdf_clips_per_s']:>10.2f} "
            f"{r['naive_clips_per_s']:>10.2f} {r['speedup']:>6.1f}x"
        )
        lines.append(
            f"{'  frames/s':<44} {r['mmdf_frames_per_s']:>10.1f} {r['naive_frames_per_s']:>10.1f}   "
            f"same main face {r['same_main_face_share']:.0%} (IoU {r['main_face_iou_mean']:.2f})"
        )
    lines.append(f"{'peak RSS of the per-core run (MiB)':<44} {results['peak_rss_mib']:>10.0f}")
    if "prepare_demo" in results:
        r = results["prepare_demo"]
        label = f"mmdf prepare, demo, {r['workers']} workers: clips/s"
        lines.append(
            f"{label:<44} {r['clips_per_s']:>10.2f}"
            f"   ({r['clips']} clips in {r['seconds']:.0f} s; worker peak RSS {r['peak_rss_worker_mib']:.0f} MiB)"
        )
    return "\n".join(lines)


def save(results: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str))
    return path
