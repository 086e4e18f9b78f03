"""Preprocessing speed per core against its physical limit and the slower routes it replaces.

    python benchmarks/bench_prepare.py [--repeats 5] [--n-demo 20] [--no-full] [--out FILE]

Every row times, in the same run and on the same clips, interleaved clip by
clip and repeated (medians over the repeats, since a shared machine is noisy):

- mmdf's route (the library's own ``prepare_clip_audio`` / ``prepare_clip_faces``);
- the limit: the bare cost of what cannot be avoided. Audio: PyAV decoding the
  audio track alone (no resampling, no mel). Faces: PyAV seeking to the key
  frame before the sampled frames and decoding up to them (each packet once,
  reference frames only, as mmdf decodes), no colour conversion, no detection;
- the reference or naive route: the FFDV notebook's audio (moviepy writes a
  WAV, librosa.load reads it; in a pass of its own beside mmdf, since its
  ffmpeg subprocesses slow whatever runs next); faces by decord plus MTCNN on
  every sampled frame at half resolution;
- what bounds mmdf above the limit: the reference recipe's own arithmetic
  (resampling to 44.1 kHz and 22.05 kHz, the mel spectrogram) and MTCNN's cost
  per frame at the detect size.

The demo clips are generated into ``--demo`` (a fresh clone needs nothing
else); the 1080p rows use ``../shared/realdata`` when it is there. The last
row runs ``mmdf prepare`` on the demo clips with every core.
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # per-core figures: before numpy/torch load (not when a test imports this file)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import NamedTuple  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"
K_FULL = 16  # sampled frames in the full-size rows


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


# --------------------------------------------------------------------------- timing


class Timings(NamedTuple):
    """Median seconds per item of each route: wall-clock, and CPU time of this process."""

    wall: dict[str, float]
    cpu: dict[str, float]


def interleaved(routes: dict, items: list, repeats: int, seed: int = 0) -> Timings:
    """Median over ``repeats`` of each route's mean seconds per item, by the wall clock and by CPU time.

    Per repeat, every item runs through every route in turn, in a fresh
    random order each time, so a burst of load on a shared machine hits all
    routes alike, and no route always runs right after a heavy one. CPU time
    (this process only) is the steadier figure where other work shares the
    cores; it misses subprocesses, so it is not used for the reference route.
    """
    names = list(routes)
    rng = np.random.default_rng(seed)
    totals = {name: ([], []) for name in names}
    for _ in range(repeats):
        spent = {name: [0.0, 0.0] for name in names}
        for item in items:
            for name in rng.permutation(names):
                t0, c0 = time.perf_counter(), time.process_time()
                routes[name](item)
                spent[name][0] += time.perf_counter() - t0
                spent[name][1] += time.process_time() - c0
        for name in names:
            totals[name][0].append(spent[name][0] / len(items))
            totals[name][1].append(spent[name][1] / len(items))
    return Timings(*({name: float(np.median(v[i])) for name, v in totals.items()} for i in (0, 1)))


def _single_thread() -> None:
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


# --------------------------------------------------------------------------- audio


def bare_audio_decode(path: str | Path, probe_video: bool = False) -> int:
    """The audio limit: decode the first audio track to arrays, nothing else; returns the samples.

    ``probe_video`` opens the file as a plain ``av.open`` does, decoding a video
    frame to probe the streams (mmdf skips that; the limit does too).
    """
    import av

    from mmdf.prepare.media import open_without_video_probe

    n = 0
    with (av.open(str(path)) if probe_video else open_without_video_probe(path)) as container:
        stream = container.streams.audio[0]
        for packet in container.demux(stream):
            for frame in packet.decode():
                n += frame.to_ndarray().shape[-1]
    return n


def decoded_audio_frames(path: str | Path) -> list:
    """The decoded audio track as mmdf hands it to the resampler (frames joined), held in memory."""
    from mmdf.prepare.media import _joined_frames, open_without_video_probe

    with open_without_video_probe(path) as container:
        stream = container.streams.audio[0]
        return list(_joined_frames(f for packet in container.demux(stream) for f in packet.decode()))


def resample_alone(frames: list, sample_rate: int, via_rate: int) -> np.ndarray:
    """The reference recipe's resampling on decoded frames: ffmpeg's resampler to ``via_rate``, mono, then soxr."""
    import av
    import librosa

    from mmdf.prepare.media import _mono

    resampler = av.AudioResampler(format="fltp", layout=frames[0].layout.name, rate=via_rate)
    chunks = [_mono(o.to_ndarray()) for f in frames for o in resampler.resample(f)]
    chunks += [_mono(o.to_ndarray()) for o in resampler.resample(None)]
    return librosa.resample(np.concatenate(chunks), orig_sr=via_rate, target_sr=sample_rate, res_type="soxr_hq")


def bench_audio(paths: list[Path], mel_cfg, repeats: int) -> dict:
    """mmdf's mel image against bare decoding, the reference route, and the recipe's own arithmetic."""
    from mmdf.prepare.audio import mel_image, prepare_clip_audio
    from mmdf.prepare.media import load_audio

    size = (mel_cfg.image_size, mel_cfg.image_size)
    frames = {p: decoded_audio_frames(p) for p in paths}
    signals = {p: load_audio(p, mel_cfg.sample_rate, mel_cfg.resample_quality, mel_cfg.pad_to_container,
                             mel_cfg.via_rate) for p in paths}
    routes = {
        "mmdf": lambda p: prepare_clip_audio(p, mel_cfg),
        "limit": bare_audio_decode,
        "limit_plain_open": lambda p: bare_audio_decode(p, probe_video=True),
        "resampler": lambda p: resample_alone(frames[p], mel_cfg.sample_rate, mel_cfg.via_rate or 44100),
        "mel": lambda p: mel_image(signals[p], mel_cfg),
    }
    reference = {"mmdf": routes["mmdf"], "reference": lambda p: reference_mel(p, mel_cfg.n_mels, size)}
    for p in paths[:1]:  # warm imports and caches
        [route(p) for route in [*routes.values(), *reference.values()]]
    s, cpu = interleaved(routes, paths, repeats)
    # A pass of its own: the reference route's ffmpeg subprocesses slow whatever runs next.
    ref = interleaved(reference, paths, max(1, repeats // 2)).wall
    s["reference"] = ref["reference"]
    mad = [float(np.abs(prepare_clip_audio(p, mel_cfg).astype(int) - reference_mel(p, mel_cfg.n_mels, size)
                        .astype(int)).mean()) for p in paths]
    recipe = s["resampler"] + s["mel"]  # what the reference recipe computes once the samples are decoded
    return {
        "clips": len(paths), "ms_per_clip": {k: 1000 * v for k, v in s.items()},
        "mmdf_clips_per_s": 1 / s["mmdf"], "reference_clips_per_s": 1 / s["reference"],
        "mmdf_over_limit": s["mmdf"] / s["limit"], "mmdf_over_limit_plain_open": s["mmdf"] / s["limit_plain_open"],
        "cpu_ms_per_clip": {k: 1000 * v for k, v in cpu.items()}, "mmdf_over_limit_cpu": cpu["mmdf"] / cpu["limit"],
        "floor_over_limit_cpu": (cpu["limit"] + cpu["resampler"] + cpu["mel"]) / cpu["limit"],
        "reference_over_mmdf": ref["reference"] / ref["mmdf"],
        "reference_pass_ms": {k: 1000 * v for k, v in ref.items()},
        "recipe_over_limit": recipe / s["limit"], "floor_over_limit": 1 + recipe / s["limit"],
        "mean_abs_diff_grey_levels_max": max(mad),
    }


# --------------------------------------------------------------------------- faces


def frame_plan(path: str | Path, k: int) -> list[tuple[int, int]]:
    """(key frame pts, last target pts) per group of the K sampled frames that one key frame reaches.

    Read from the packets (no decoding); it is what a container's index
    already tells, so it stays outside the timed limit.
    """
    import av

    from mmdf.prepare.media import sample_indices

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size and p.pts is not None]
    pts = np.sort([p for p, _ in packets])
    keys = np.sort([p for p, key in packets if key] or [pts[0]])
    groups: dict[int, int] = {}
    for target in pts[sample_indices(len(pts), k)]:
        key = int(keys[max(0, np.searchsorted(keys, target, side="right") - 1)])
        groups[key] = max(groups.get(key, int(target)), int(target))
    return sorted(groups.items())


def bare_frame_decode(path: str | Path, plan: list[tuple[int, int]], skip_nonref: bool = True) -> int:
    """The faces limit: seek to each key frame of ``plan`` and decode up to its last target; returns frames."""
    from mmdf.prepare.media import video_decoder

    n = 0
    with video_decoder(path, skip_nonref) as (container, stream, ctx):  # the decoder as the face half sets it up
        for key, last in plan:
            container.seek(key, stream=stream)
            ctx.flush_buffers()
            n += _decode_until(container.demux(stream), ctx, last)
    return n


def _decode_until(packets, ctx, last: int) -> int:
    """Decode packets until a frame at or past ``last`` comes out (frames stay in the decoder's format)."""
    n = 0
    for packet in packets:
        for frame in ctx.decode(packet):
            n += 1
            if frame.pts is not None and frame.pts >= last:
                return n
    return n


def naive_faces(path: Path, k: int, mtcnn, min_confidence: float) -> tuple[list, int]:
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


def main_face_agreement(paths: list[Path], face_cfg, detector, naive) -> dict:
    """Share of frames where mmdf and the naive route find the same main face (IoU > 0.5), and the mean IoU."""
    from mmdf.prepare.faces import box_iou, prepare_clip_faces

    ious, found, found_naive, sampled = [], 0, 0, 0
    for path in paths:
        res = prepare_clip_faces(path, face_cfg, detector)
        naive_boxes, _ = naive_faces(path, face_cfg.num_frames, naive, face_cfg.min_confidence)
        by_index = dict(naive_boxes)
        found, sampled = found + res.frames_with_face, sampled + res.frames_sampled
        found_naive += sum(b is not None for _, b in naive_boxes)
        ious += [float(box_iou(box, by_index[i][None].astype(np.float32))[0])
                 for i, box in zip(res.frame_indices.tolist(), res.boxes) if by_index.get(i) is not None]
    return {"frames_sampled": sampled, "frames_with_face_mmdf": found, "frames_with_face_naive": found_naive,
            "same_main_face_share": float(np.mean([x > 0.5 for x in ious])) if ious else float("nan"),
            "main_face_iou_mean": float(np.mean(ious)) if ious else float("nan")}


def bench_faces(paths: list[Path], face_cfg, label: str, repeats: int) -> dict:
    """mmdf's face crops against bare decoding of the sampled frames, the naive route, and MTCNN's own cost."""
    from facenet_pytorch import MTCNN

    from mmdf.prepare.faces import FaceDetector, faces_from_frames, prepare_clip_faces
    from mmdf.prepare.media import read_frames

    detector = FaceDetector(face_cfg)
    naive = MTCNN(keep_all=True, device="cpu")
    k = face_cfg.num_frames
    plans = {p: frame_plan(p, k) for p in paths}
    decoded = {p: read_frames(p, k, face_cfg.skip_nonref) for p in paths}
    routes = {
        "mmdf": lambda p: prepare_clip_faces(p, face_cfg, detector),
        "limit": lambda p: bare_frame_decode(p, plans[p], face_cfg.skip_nonref),
        "naive": lambda p: naive_faces(p, k, naive, face_cfg.min_confidence),
        "mmdf_decode": lambda p: read_frames(p, k, face_cfg.skip_nonref),
        "mmdf_detect": lambda p: faces_from_frames(*decoded[p], detector, face_cfg),
        "mtcnn_frame": lambda p: detector.detect(decoded[p][0][:1]),
    }
    for route in routes.values():  # warm up
        route(paths[0])
    s, cpu = interleaved(routes, paths, repeats)
    keys = len(set(range(0, k, max(1, face_cfg.detect_every))) | {k - 1})
    detection = keys * s["mtcnn_frame"]  # whole-frame MTCNN on the key frames, nothing else
    return {
        "data": label, "clips": len(paths), "k": k, "key_frames": keys, "detect_size": face_cfg.detect_size,
        "ms_per_clip": {name: 1000 * v for name, v in s.items()},
        "mmdf_clips_per_s": 1 / s["mmdf"], "mmdf_frames_per_s": k / s["mmdf"], "naive_clips_per_s": 1 / s["naive"],
        "mmdf_over_limit": s["mmdf"] / s["limit"], "naive_over_mmdf": s["naive"] / s["mmdf"],
        "cpu_ms_per_clip": {name: 1000 * v for name, v in cpu.items()},
        "mmdf_over_limit_cpu": cpu["mmdf"] / cpu["limit"],
        "floor_over_limit_cpu": 1 + keys * cpu["mtcnn_frame"] / cpu["limit"],
        "detection_over_limit": detection / s["limit"], "floor_over_limit": 1 + detection / s["limit"],
        **main_face_agreement(paths, face_cfg, detector, naive),
    }


# --------------------------------------------------------------------------- the three halves of a clip


def bench_halves(paths: list[Path], prepare_cfg, label: str, repeats: int) -> dict:
    """Each half of ``process_clip`` (mel, faces, sync) as a worker runs it, same clips, same detector.

    In the worker's order: the sync half places the mouth by the landmarks the
    face half just found, so the halves cannot be shuffled as the rows above
    are; medians over the repeats of each half's mean per clip.
    """
    from mmdf.prepare import clip
    from mmdf.prepare.faces import FaceDetector
    from mmdf.prepare.media import MediaError, probe, used_span

    detector = FaceDetector(prepare_cfg.faces)
    halves = {"mel": clip._make_mel, "faces": clip._make_faces, "sync": clip._make_sync}
    spent: dict[str, list[float]] = {name: [] for name in halves}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(repeats + 1):  # the first one warms up
            totals = dict.fromkeys(halves, 0.0)
            for path in paths:
                info = probe(path)
                task = clip.ClipTask("val", path.name, str(path), path.stem)
                job = clip._Job(task, info, used_span(info.duration, prepare_cfg.max_duration), prepare_cfg,
                                detector, Path(tmp))
                for name, make in halves.items():
                    t0 = time.perf_counter()
                    try:
                        make(job)
                    except MediaError:  # no face, too short: the worker spends this time too
                        pass
                    totals[name] += time.perf_counter() - t0
            if repeat:
                for name in halves:
                    spent[name].append(totals[name] / len(paths))
    ms = {name: 1000 * float(np.median(v)) for name, v in spent.items()}
    return {"data": label, "clips": len(paths), "ms_per_clip": ms, "sync_over_faces": ms["sync"] / ms["faces"]}


# --------------------------------------------------------------------------- the cache's size


CODECS = [("raw", 0), ("png", 0), ("jpeg", 90), ("jpeg", 95), ("webp", 90), ("webp", 95)]


def clip_bytes(root: Path, row) -> dict[str, int]:
    """Bytes of each feature file of a manifest row (paths relative to the cache ``root``)."""
    from mmdf.prepare.row import FEATURE_FILES

    return {kind: (root / getattr(row, col)).stat().st_size if getattr(row, col) else 0
            for kind, col in FEATURE_FILES.items()}


def _codec_row(faces: list, mouths: list, codec: str, quality: int) -> dict:
    """Bytes a clip (mean), mean absolute error and single-thread decode time (CPU time) per face of one codec."""
    from mmdf.prepare.store import decode_image, encode_image, pack_mouths, unpack_mouths

    face_bytes, errors, decode_s, n = 0, [], 0.0, 0
    for crops in faces:
        for crop in crops:
            data = encode_image(crop, codec, quality) if codec != "raw" else None
            t0 = time.thread_time()  # CPU time of this thread: a figure per core even on a busy machine
            back = decode_image(data, colour=True) if data is not None else np.array(crop)
            decode_s += time.thread_time() - t0
            face_bytes += len(data) if data is not None else crop.nbytes
            errors.append(np.abs(back.astype(np.int16) - crop).mean())
            n += 1
    mouth_bytes, mouth_err = 0, []
    for mouth in mouths:
        packed = pack_mouths(mouth, codec, quality)
        mouth_bytes += sum(v.nbytes for v in packed.values())
        mouth_err.append(np.abs(unpack_mouths(packed).astype(np.int16) - mouth).mean())
    return {"codec": f"{codec}" + (f" q{quality}" if codec in ("jpeg", "webp") else ""),
            "face_kb_per_clip": face_bytes / len(faces) / 1024, "face_mae": float(np.mean(errors)),
            "face_decode_ms": 1000 * decode_s / n, "faces_per_s_per_core": n / decode_s,
            "mouth_kb_per_clip": mouth_bytes / len(mouths) / 1024, "mouth_mae": float(np.mean(mouth_err))}


def bench_cache(paths: list[Path], prepare_cfg, label: str) -> dict:
    """The cache of ``paths`` with ``prepare_cfg`` (its codec): bytes a clip by feature; and every codec of
    :data:`CODECS` on the same face and mouth crops: size, error, decode speed on one core."""
    from mmdf.prepare.clip import ClipTask, process_clip
    from mmdf.prepare.faces import FaceDetector
    from mmdf.prepare.mouth import SyncTrack
    from mmdf.prepare.store import load_crops

    detector = FaceDetector(prepare_cfg.faces)
    raw_cfg = dataclasses.replace(prepare_cfg, faces=dataclasses.replace(prepare_cfg.faces, codec="raw"))
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as raw:
        rows = [process_clip(ClipTask("val", p.name, str(p), p.name), prepare_cfg, detector, Path(tmp))
                for p in paths]
        sizes = [clip_bytes(Path(tmp), r) for r in rows if r.faces_file and r.sync_file]
        rows = [process_clip(ClipTask("val", p.name, str(p), p.name), raw_cfg, detector, Path(raw))
                for p in paths]  # the codecs compared on the crops as they were cut, never decoded
        rows = [r for r in rows if r.faces_file and r.sync_file]
        faces = [load_crops(Path(raw) / r.faces_file) for r in rows]
        mouths = [SyncTrack.load(Path(raw) / r.sync_file).mouth for r in rows]
    kb = {kind: float(np.mean([s[kind] for s in sizes])) / 1024 for kind in sizes[0]}
    largest = max(sum(s.values()) for s in sizes) / 1024
    return {"data": label, "clips": len(rows), "codec": f"{prepare_cfg.faces.codec} q{prepare_cfg.faces.quality}",
            "kb_per_clip": {**kb, "total": sum(kb.values()), "largest_clip": largest},
            "codecs": [_codec_row(faces, mouths, codec, quality) for codec, quality in CODECS]}


# --------------------------------------------------------------------------- whole runs


def demo_clips(folder: Path, n_train: int) -> Path:
    """The demo dataset of ``n_train`` (+ a few val/test) clips in ``folder``, made once and reused."""
    from mmdf.demo.dataset import make_demo_dataset

    n_other = max(2, n_train // 10)
    return make_demo_dataset(folder, n_train=n_train, n_val=n_other, n_test=n_other)


def bench_full_prepare(cfg, cache_dir: Path) -> dict:
    """The whole `mmdf prepare` with every core, into a fresh cache."""
    from mmdf.prepare.runner import prepare_dataset, resolve_workers

    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, cache_dir=str(cache_dir)))
    t0 = time.perf_counter()
    manifest = prepare_dataset(cfg, force=True)
    seconds = time.perf_counter() - t0
    return {
        "clips": len(manifest), "workers": resolve_workers(cfg.prepare.workers), "seconds": seconds,
        "clips_per_s": len(manifest) / seconds, "statuses": manifest["status"].value_counts().to_dict(),
        "peak_rss_worker_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def _has_audio(path: Path) -> bool:
    from mmdf.prepare.media import MediaError, probe

    try:
        info = probe(path)
    except MediaError:
        return False
    return info.has_audio and info.audio_duration >= 0.5


def run_benchmark(cfg, demo_cfg, n_demo: int = 20, repeats: int = 5, full: bool = True) -> dict:
    """All measurements in one run; ``cfg`` gives the full-size feature settings, ``demo_cfg`` the demo dataset."""
    from mmdf.data.labels import load_dataset

    _single_thread()
    demo = load_dataset(demo_cfg.data, missing="keep")
    demo_paths = [Path(p) for p in demo["path"] if Path(p).is_file() and Path(p).stat().st_size > 0][:n_demo]
    real = sorted(p for p in REALDATA.glob("*.mp4") if p.name != "corrupted.mp4")
    full_faces = dataclasses.replace(cfg.prepare.faces, num_frames=K_FULL)
    results: dict = {"machine": f"{os.cpu_count()} CPU cores, per-core rows on one thread",
                     "repeats": repeats, "audio": {}, "faces": {}}
    results["audio"]["demo"] = bench_audio([p for p in demo_paths if _has_audio(p)], demo_cfg.prepare.mel, repeats)
    results["faces"]["demo"] = bench_faces(demo_paths, demo_cfg.prepare.faces,
                                           f"{len(demo_paths)} demo clips, demo settings", repeats)
    results["halves"] = {"demo": bench_halves([p for p in demo_paths if _has_audio(p)], demo_cfg.prepare,
                                              "demo clips, demo settings", repeats)}
    if real:
        results["audio"]["realdata_1080p"] = bench_audio(real, cfg.prepare.mel, repeats)
        results["faces"]["realdata_1080p"] = bench_faces(real, full_faces, f"the {len(real)} shared 1080p clips",
                                                         max(1, repeats // 2))
        full_prepare = dataclasses.replace(cfg.prepare, faces=full_faces)
        results["halves"]["realdata_1080p"] = bench_halves(real, full_prepare, "the shared 1080p clips",
                                                           max(1, repeats // 2))
        results["cache"] = bench_cache(real, full_prepare, f"the {len(real)} shared 1080p clips, full-size settings")
    else:
        results["skipped"] = f"no 1080p rows: {REALDATA} is absent"
    results["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if full:
        with tempfile.TemporaryDirectory() as tmp:
            results["prepare_demo"] = bench_full_prepare(demo_cfg, Path(tmp))
    return results


# --------------------------------------------------------------------------- output


def format_table(results: dict) -> str:
    """The rows as a text table: ms per clip (medians), mmdf as a multiple of the limit, and the bounds."""
    head = (f"{'row (ms per clip, median)':<36} {'mmdf':>8} {'limit':>8} {'x limit':>8} {'cpu time':>9} "
            f"{'ref/naive':>10} {'x faster':>9}")
    lines = [head, "-" * len(head)]
    for name, r in results["audio"].items():
        ms, label = r["ms_per_clip"], f"audio, {name} ({r['clips']})"
        lines.append(f"{label:<36} {ms['mmdf']:>8.1f} {ms['limit']:>8.1f} "
                     f"{r['mmdf_over_limit']:>7.2f}x {r['mmdf_over_limit_cpu']:>8.2f}x "
                     f"{ms['reference']:>10.1f} {r['reference_over_mmdf']:>8.1f}x")
        lines.append(f"{'  recipe alone: resampler / mel':<36} {ms['resampler']:>8.1f} {ms['mel']:>8.1f}   "
                     f"= {r['recipe_over_limit']:.2f}x limit: floor {r['floor_over_limit']:.2f}x limit "
                     f"({r['floor_over_limit_cpu']:.2f}x by cpu time); "
                     f"grey-level diff to ref <= {r['mean_abs_diff_grey_levels_max']:.2f}")
        lines.append(f"{'  limit with a plain av.open':<36} {ms['limit_plain_open']:>8.1f}"
                     f"{'':>9} {r['mmdf_over_limit_plain_open']:>7.2f}x   (opening probes a video frame)")
    for name, r in results["faces"].items():
        ms, label = r["ms_per_clip"], f"faces K={r['k']}, {name} ({r['clips']})"
        lines.append(f"{label:<36} {ms['mmdf']:>8.1f} "
                     f"{ms['limit']:>8.1f} {r['mmdf_over_limit']:>7.2f}x {r['mmdf_over_limit_cpu']:>8.2f}x "
                     f"{ms['naive']:>10.1f} "
                     f"{r['naive_over_mmdf']:>8.1f}x")
        lines.append(f"{'  mmdf decode / detect+crop':<36} {ms['mmdf_decode']:>8.1f} {ms['mmdf_detect']:>8.1f}"
                     f"   MTCNN {ms['mtcnn_frame']:.1f} ms/frame at {r['detect_size']} px x {r['key_frames']} key"
                     f" frames = {r['detection_over_limit']:.2f}x limit: floor {r['floor_over_limit']:.2f}x limit"
                     f" ({r['floor_over_limit_cpu']:.2f}x by cpu time)")
        lines.append(f"{'  same main face as naive':<36} {r['same_main_face_share']:>8.0%}   (IoU "
                     f"{r['main_face_iou_mean']:.2f}; {r['frames_with_face_mmdf']}/{r['frames_sampled']} frames)")
    for name, r in results.get("halves", {}).items():
        ms = r["ms_per_clip"]
        lines.append(f"{'halves, ' + name + ' (' + str(r['clips']) + ')':<36} mel {ms['mel']:.1f}, faces "
                     f"{ms['faces']:.1f}, sync {ms['sync']:.1f}: sync = {r['sync_over_faces']:.2f}x faces")
    if "cache" in results:
        lines += format_cache(results["cache"])
    lines.append(f"{'peak RSS of the per-core run (MiB)':<36} {results['peak_rss_mib']:>8.0f}")
    if "prepare_demo" in results:
        r = results["prepare_demo"]
        lines.append(f"mmdf prepare, {r['clips']} demo clips, {r['workers']} workers: {r['clips_per_s']:.1f} clips/s "
                     f"({r['seconds']:.1f} s; worker peak RSS {r['peak_rss_worker_mib']:.0f} MiB)")
    lines += [results["skipped"]] if "skipped" in results else []
    return "\n".join(lines)


def format_cache(r: dict) -> list[str]:
    """The cache rows: bytes a clip as stored, then the codecs side by side."""
    kb = r["kb_per_clip"]
    lines = [f"cache, {r['data']}, {r['codec']}: {kb['total']:.0f} KB a clip (mel {kb['mel']:.0f}, faces "
             f"{kb['faces']:.0f}, sync {kb['sync']:.0f}; the largest clip {kb['largest_clip']:.0f}); "
             "the target is at most 400 KB",
             f"  {'codec':<9} {'faces KB/clip':>13} {'MAE':>5} {'ms/face':>8} {'faces/s/core':>12} "
             f"{'mouths KB/clip':>14} {'MAE':>5}"]
    for c in r["codecs"]:
        lines.append(f"  {c['codec']:<9} {c['face_kb_per_clip']:>13.0f} {c['face_mae']:>5.2f} "
                     f"{c['face_decode_ms']:>8.2f} {c['faces_per_s_per_core']:>12.0f} "
                     f"{c['mouth_kb_per_clip']:>14.0f} {c['mouth_mae']:>5.2f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs/data.yaml"), help="full-size feature settings")
    parser.add_argument("--demo-config", default=str(REPO / "configs/demo/data.yaml"), help="demo feature settings")
    parser.add_argument("--demo", default=str(REPO / "runs/bench_prepare/demo"),
                        help="where the demo clips are generated (once; reused after)")
    parser.add_argument("--n-demo", type=int, default=20, help="demo clips in the per-core rows")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats per row (faces 1080p: half)")
    parser.add_argument("--no-full", action="store_true", help="skip the whole-dataset `mmdf prepare` run")
    parser.add_argument("--out", default=str(REPO / "runs/bench_prepare/results.json"))
    parser.add_argument("--cache-only", action="store_true",
                        help="only the cache rows: bytes a clip and the codecs, on the shared 1080p clips")
    args = parser.parse_args()

    from mmdf.run_config import load_config

    if args.cache_only:
        _single_thread()
        cfg = load_config(args.config)
        real = sorted(p for p in REALDATA.glob("*.mp4") if p.name != "corrupted.mp4")
        prepare = dataclasses.replace(cfg.prepare, faces=dataclasses.replace(cfg.prepare.faces, num_frames=K_FULL))
        print("\n".join(format_cache(bench_cache(real, prepare, f"the {len(real)} shared 1080p clips"))))
        return

    demo_root = demo_clips(Path(args.demo), max(args.n_demo, 40))
    demo_cfg = load_config(args.demo_config, [f"data.root={demo_root}", "prepare.progress=false"])
    results = run_benchmark(load_config(args.config), demo_cfg, args.n_demo, args.repeats, not args.no_full)
    print(format_table(results))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
