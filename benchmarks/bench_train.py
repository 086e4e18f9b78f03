"""Training/inference samples/s per branch, and the data loader alone against the model step.

    python benchmarks/bench_train.py audio --config configs/demo/audio.yaml --synthetic 256
    python benchmarks/bench_train.py visual --config configs/visual.yaml train.batch_size=64

On CUDA it measures AMP off, bf16 and fp16. ``--synthetic N`` uses random
cached features of the configured shapes (same file reads, no preprocessing);
otherwise the config's prepared cache. Comparing the loader's samples/s with
the model step's tells whether reading the cache is the bottleneck.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from mmdf.config import add_config_arguments
from mmdf.run_config import Config, config_from_args
from mmdf.errors import MmdfError
from mmdf.train.branches import all_branches, get_branch
from mmdf.train.branches.base import Branch
from mmdf.train.loop import train_step
from mmdf.train.runtime import Runtime, resolve_runtime

AMP_NAMES = {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}


def synthetic_manifest(cfg: Config, branch: Branch, n: int, folder: Path) -> pd.DataFrame:
    """``n`` train rows with random features shaped as the branch's dataset reads them from the cache."""
    rng = np.random.default_rng(0)
    p = cfg.prepare
    shapes = {"mel_file": (p.mel.image_size, p.mel.image_size),
              "faces_file": (p.faces.num_frames, p.faces.crop_size, p.faces.crop_size, 3)}
    if branch.file_col not in shapes:
        raise MmdfError(f"--synthetic knows the mel and face caches only, not {branch.file_col}")
    rows = []
    for i in range(n):
        path = folder / f"clip_{i:05d}.{branch.name}.npy"
        np.save(path, rng.integers(0, 256, shapes[branch.file_col], dtype=np.uint8))
        rows.append({"split": "train", "video_name": f"clip_{i:05d}.mp4", "target": i % 2,
                     branch.status_col: "ok", branch.file_col: str(path),
                     "frames_with_face": p.faces.num_frames})
    return pd.DataFrame(rows)


def _timed(fn, n: int, rt: Runtime) -> float:
    """Seconds for ``n`` calls of ``fn`` (device synchronised)."""
    sync = torch.cuda.synchronize if rt.device.type == "cuda" else (lambda *a: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    sync()
    return time.perf_counter() - t0


def bench_amp(model, loader, rt: Runtime, amp, n_batches: int, warmup: int) -> list[dict]:
    """train_step, train end to end and inference samples/s under one precision (and peak GPU memory)."""
    rt.amp_dtype = amp
    if rt.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(rt.device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(rt.device.type, enabled=amp == torch.float16)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    batch = next(iter(loader))
    x, y = rt.to_device(batch[0]), batch[1].to(rt.device)
    bs = len(x)
    model.train()
    for _ in range(warmup):
        train_step(model, x, y, loss_fn, opt, scaler, rt)
    rows = [("train_step", n_batches * bs / _timed(lambda: train_step(model, x, y, loss_fn, opt, scaler, rt),
                                                   n_batches, rt))]
    it = iter(loader)

    def loaded_step():
        bx, by, _ = next(it)
        train_step(model, rt.to_device(bx), by.to(rt.device), loss_fn, opt, scaler, rt)

    rows.append(("train_end_to_end", n_batches * bs / _timed(loaded_step, n_batches, rt)))
    model.eval()
    with torch.inference_mode(), rt.autocast():
        for _ in range(warmup):
            model(x)
        rows.append(("inference", n_batches * bs / _timed(lambda: model(x), n_batches, rt)))
    peak = torch.cuda.max_memory_allocated(rt.device) / 2**20 if rt.device.type == "cuda" else float("nan")
    return [{"what": what, "amp": AMP_NAMES[amp], "samples_per_s": rate, "peak_gpu_mib": peak} for what, rate in rows]


def bench_branch(cfg: Config, branch: Branch, manifest: pd.DataFrame | None = None, steps: int = 10,
                 warmup: int = 2, synthetic: int = 0) -> list[dict]:
    """Samples/s per measurement (loader, train_step, train_end_to_end, inference) and AMP mode."""
    tcfg = cfg.train
    section = branch.section(tcfg)
    rt = resolve_runtime(tcfg)
    with tempfile.TemporaryDirectory() as tmp:
        if synthetic:
            manifest = synthetic_manifest(cfg, branch, synthetic, Path(tmp))
        elif manifest is None:
            from mmdf.prepare.manifest import load_manifest
            manifest = load_manifest(cfg)
        rows = manifest[branch.usable(manifest) & (manifest["split"] == "train").to_numpy()]
        model = branch.create_model(section.model, cfg.prepare).to(rt.device)
        if rt.channels_last:
            model.to(memory_format=torch.channels_last)
        rows = branch.training_rows(rows)
        ds = branch.dataset(rows, section, *branch.normalization(model, section, rows), train=True)
        loader = DataLoader(ds, tcfg.batch_size, shuffle=True, num_workers=tcfg.num_workers, drop_last=True,
                            pin_memory=rt.device.type == "cuda", persistent_workers=tcfg.num_workers > 0)
        n_batches = min(steps, len(loader))
        base = dict(branch=branch.name, model=section.model.name, device=str(rt.device),
                    batch_size=tcfg.batch_size, num_workers=tcfg.num_workers, input=tuple(ds[0][0].shape))
        it = iter(loader)
        next(it)  # start the workers, warm the page cache
        loader_rate = n_batches * tcfg.batch_size / _timed(lambda: next(it), n_batches - 1, rt) \
            if n_batches > 1 else float("nan")
        results = [{**base, "what": "loader", "amp": "-", "samples_per_s": loader_rate}]
        amps = [None] + ([torch.bfloat16, torch.float16] if rt.device.type == "cuda" else [])
        for amp in amps:
            results += [{**base, **r} for r in bench_amp(model, loader, rt, amp, n_batches, warmup)]
        del it, loader  # persistent workers stop with the loader
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("branch", choices=list(all_branches()))
    parser.add_argument("--synthetic", type=int, default=0, metavar="N", help="N random clips instead of the cache")
    parser.add_argument("--steps", type=int, default=10, help="batches per measurement")
    parser.add_argument("--out", default=None, help="also write the rows as JSON here")
    add_config_arguments(parser)
    args = parser.parse_intermixed_args()
    try:
        rows = bench_branch(config_from_args(args), get_branch(args.branch), steps=args.steps,
                            synthetic=args.synthetic)
    except MmdfError as exc:
        sys.exit(f"bench_train: error: {exc}")
    print(pd.DataFrame(rows).to_string(index=False, float_format="%.1f"))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
