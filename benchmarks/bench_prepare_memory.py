"""Peak memory of `mmdf prepare`: the parent over a large finished journal, and one worker on a long clip.

    python benchmarks/bench_prepare_memory.py journal --clips 320000 --work /tmp/mmdf-bench
    python benchmarks/bench_prepare_memory.py long-clip --minutes 12 --work /tmp/mmdf-bench

``journal`` builds a synthetic FFDV layout of ``--clips`` clips (empty files),
a cache whose journal says every clip is done (its feature files present,
empty too) and a sibling cache made with other mel
parameters (a donor of face crops), then runs ``prepare_dataset`` in a fresh
process and prints its peak resident memory: the parent's cost per clip, as a
second `mmdf prepare` over a finished 320k-clip cache pays it. ``long-clip``
writes a long clip with the ffmpeg binary of imageio-ffmpeg (640x360, 4 Mbit/s
video, 48 kHz stereo AAC) and prints the peak resident memory of one worker
preparing it, next to the same process before the clip (detector loaded).
Peak RSS is the process's VmHWM; run on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SPLITS = (("train", "trainset", "trainset_label.txt"), ("val", "valset", "valset_label.txt"),
          ("test", "testset", "testset_list.txt"))


def peak_mib() -> float:
    """Peak resident memory of this process so far, in MiB.

    Linux's VmHWM (``ru_maxrss`` would carry over the parent's peak across exec).
    """
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def overrides(work: Path, *extra: str) -> list[str]:
    return [f"data.root={work / 'data'}", f"data.cache_dir={work / 'cache'}", "prepare.isolate=false",
            "prepare.progress=false", *extra]


def names_of(n: int) -> dict[str, list[str]]:
    """FFDV-like names (md5 hex + .mp4): 70% train, 15% val, 15% test."""
    import hashlib

    names = [hashlib.md5(str(i).encode()).hexdigest() + ".mp4" for i in range(n)]
    cut1, cut2 = int(0.7 * n), int(0.85 * n)
    return {"train": names[:cut1], "val": names[cut1:cut2], "test": names[cut2:]}


def make_layout(work: Path, n: int) -> dict[str, list[str]]:
    """Label files and clip folders of ``n`` empty clips; reused when present."""
    data = work / "data"
    names = names_of(n)
    done = data / f".made-{n}"
    if done.is_file():
        return names
    for split, folder, labels in SPLITS:
        (data / folder).mkdir(parents=True, exist_ok=True)
        for name in names[split]:
            (data / folder / name).touch()
        header = "video_name" if split == "test" else "video_name,target"
        rows = [name if split == "test" else f"{name},{i % 2}" for i, name in enumerate(names[split])]
        (data / labels).write_text("\n".join([header, *rows]) + "\n")
    done.write_text("")
    return names


def journal_row(split: str, name: str, source: str, i: int, faces_only: bool = False) -> dict:
    """A finished clip's journal row; every 20th clip has no face."""
    no_face = i % 20 == 0
    stem = name
    return {
        "split": split, "video_name": name, "status": "no_face" if no_face else "ok", "error":
        "video: no face in any of 16 sampled frames" if no_face else "", "audio_status": "ok",
        "visual_status": "no_face" if no_face else "ok", "duration": 10.0, "has_audio": True,
        "frames_sampled": 16, "frames_with_face": 0 if no_face else 16,
        "face_conf_mean": float("nan") if no_face else 0.99, "decoded_share": 1.0,
        "span_start": 0.0, "span_end": 10.0, "mel_file": "" if faces_only else f"mel/{split}/{stem}.npy",
        "faces_file": "" if no_face else f"faces/{split}/{stem}.npy", "prepared_at": 1.7e9 + i, "source": source,
    }


def make_cache(root: Path, work: Path, names: dict[str, list[str]], faces_only: bool) -> None:
    """A cache whose journal finishes every clip, with its feature files (empty)."""
    from mmdf.prepare.cache import source_fingerprint

    if (root / "journal" / "shard-0-of-1.jsonl").is_file():
        return
    lines, i = [], 0
    for split, _, _ in SPLITS:
        for kind in ("mel", "faces"):
            (root / kind / split).mkdir(parents=True, exist_ok=True)
        folder = dict((s, f) for s, f, _ in SPLITS)[split]
        for name in names[split]:
            source = source_fingerprint(work / "data" / folder / name)
            row = journal_row(split, name, source, i, faces_only)
            for key in ("mel_file", "faces_file"):
                if row[key]:
                    (root / row[key]).touch()
            lines.append(json.dumps(row))
            i += 1
    (root / "journal").mkdir(parents=True, exist_ok=True)
    (root / "journal" / "shard-0-of-1.jsonl").write_text("\n".join(lines) + "\n")


def setup_journal(work: Path, n: int) -> None:
    """The layout, the cache of the default parameters and a donor cache differing in n_mels."""
    from mmdf.run_config import load_config
    from mmdf.prepare.cache import cache_root, feature_params

    names = make_layout(work, n)
    for extra, faces_only in (((), False), (("prepare.mel.n_mels=64",), True)):
        cfg = load_config(None, overrides(work, *extra))
        root = cache_root(cfg)
        make_cache(root, work, names, faces_only)
        (root / "params.json").write_text(json.dumps(feature_params(cfg.prepare), sort_keys=True))


def measure_journal(work: Path) -> None:
    """In this fresh process: one `prepare_dataset` over the finished cache; print the figures."""
    import logging

    from mmdf.run_config import load_config
    from mmdf.prepare.runner import prepare_dataset

    logging.basicConfig(level=logging.WARNING)
    cfg = load_config(None, overrides(work))
    before = peak_mib()
    start = time.time()
    manifest = prepare_dataset(cfg)
    print(json.dumps({"clips": len(manifest), "peak_rss_mib": round(peak_mib()), "rss_after_imports_mib":
                      round(before), "seconds": round(time.time() - start, 1)}))


def make_long_clip(path: Path, minutes: float) -> Path:
    """A long clip written by the ffmpeg binary that imageio-ffmpeg ships (reused when present)."""
    import imageio_ffmpeg

    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([
        imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error",
        "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(minutes * 60), "-ac", "2", "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "4M", "-g", "250",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", str(path),
    ], check=True)
    return path


def measure_long_clip(path: Path) -> None:
    """In this fresh process: one worker's work on ``path`` with the default parameters."""
    import tempfile

    import torch

    from mmdf.prepare.clip import ClipTask, process_clip
    from mmdf.prepare.config import PrepareConfig
    from mmdf.prepare.faces import FaceDetector

    torch.set_num_threads(1)
    cfg = PrepareConfig()
    detector = FaceDetector(cfg.faces)
    before = peak_mib()
    start = time.time()
    row = process_clip(ClipTask("train", path.name, str(path), path.name), cfg, detector, Path(tempfile.mkdtemp()))
    row = row if isinstance(row, dict) else row.record()  # a dict before mmdf.prepare.row existed
    print(json.dumps({"status": row["status"], "peak_rss_mib": round(peak_mib()), "rss_before_clip_mib": round(before),
                      "seconds": round(time.time() - start, 1), **{k: row.get(k) for k in ("span_start", "span_end")}}))


def main(argv: list[str] | None = None) -> int:
    """Set up in this process, measure in a fresh one (so setup costs do not count)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["journal", "long-clip", "_measure-journal", "_measure-clip"])
    parser.add_argument("--clips", type=int, default=320_000)
    parser.add_argument("--minutes", type=float, default=12.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/mmdf-bench"))
    args = parser.parse_args(argv)
    if args.mode == "_measure-journal":
        measure_journal(args.work)
    elif args.mode == "_measure-clip":
        measure_long_clip(args.work / f"long-{args.minutes:g}min.mp4")
    else:
        if args.mode == "journal":
            setup_journal(args.work, args.clips)
        else:
            make_long_clip(args.work / f"long-{args.minutes:g}min.mp4", args.minutes)
        inner = "_measure-journal" if args.mode == "journal" else "_measure-clip"
        subprocess.run([sys.executable, __file__, inner, "--work", str(args.work), "--minutes", str(args.minutes)],
                       check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
