"""Throughput of branch training: data loader alone, model step alone, both, and inference.

Comparing the loader's samples/s with the model step's tells whether the
cache reading is the bottleneck. Features come from the prepared cache of a
config or, with ``synthetic``, from random uint8 ``.npy`` files of the
configured shapes (same file reads, no preprocessing needed).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from mmdf.config import Config
from mmdf.train.datasets import branch_spec, build_dataset, usable_mask
from mmdf.train.models import create_model, normalization
from mmdf.train.runtime import Runtime, resolve_runtime
from mmdf.train.trainer import train_step


def synthetic_manifest(cfg: Config, branch: str, n: int, folder: Path) -> pd.DataFrame:
    """``n`` train rows with random features shaped as ``cfg.prepare`` would cache them."""
    rng = np.random.default_rng(0)
    spec = branch_spec(branch)
    rows = []
    for i in range(n):
        path = folder / f"clip_{i:05d}.{branch}.npy"
        if branch == "audio":
            s = cfg.prepare.mel.image_size
            np.save(path, rng.integers(0, 256, (s, s), dtype=np.uint8))
        else:
            s = cfg.prepare.faces.crop_size
            np.save(path, rng.integers(0, 256, (cfg.prepare.faces.num_frames, s, s, 3), dtype=np.uint8))
        rows.append({"split": "train", "video_name": f"clip_{i:05d}.mp4", "target": i % 2,
                     spec.status_col: "ok", spec.file_col: str(path)})
    return pd.DataFrame(rows)


def _rate(n_samples: int, seconds: float) -> float:
    return n_samples / max(seconds, 1e-9)


def _sync(rt: Runtime) -> None:
    if rt.device.type == "cuda":
        torch.cuda.synchronize(rt.device)


def bench_branch(cfg: Config, branch: str, manifest: pd.DataFrame | None = None, steps: int = 10,
                 warmup: int = 2, synthetic: int = 0) -> list[dict]:
    """Samples/s per measurement (loader, train_step, train_end_to_end, inference) and AMP mode."""
    tcfg = cfg.train
    bcfg = getattr(tcfg, branch)
    rt = resolve_runtime(tcfg)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if synthetic:
            manifest = synthetic_manifest(cfg, branch, synthetic, Path(tmp))
        elif manifest is None:
            from mmdf.prepare.manifest import load_manifest
            manifest = load_manifest(cfg)
        rows = manifest[usable_mask(manifest, branch_spec(branch)) & (manifest["split"] == "train")]
        model = create_model(bcfg.model, key=f"train.{branch}.model").to(rt.device)
        if rt.channels_last:
            model.to(memory_format=torch.channels_last)
        norm = normalization(model, bcfg.model.in_chans)
        ds = build_dataset(branch, rows, tcfg, *norm, train=True)
        bs = tcfg.batch_size
        loader = DataLoader(ds, bs, shuffle=True, num_workers=tcfg.num_workers, drop_last=True,
                            pin_memory=rt.device.type == "cuda", persistent_workers=tcfg.num_workers > 0)
        n_batches = min(steps, len(loader))
        base = dict(branch=branch, model=bcfg.model.name, device=str(rt.device), batch_size=bs,
                    num_workers=tcfg.num_workers, input=tuple(ds[0][0].shape))

        def loader_pass() -> float:
            it = iter(loader)
            t0 = time.perf_counter()
            count = 0
            for _ in range(n_batches):
                x, _, _ = next(it)
                count += len(x)
            return _rate(count, time.perf_counter() - t0)

        loader_pass()  # start the workers, warm the page cache
        results.append({**base, "what": "loader", "amp": "-", "samples_per_s": loader_pass()})

        batch = next(iter(loader))
        amps = [None] + ([torch.bfloat16, torch.float16] if rt.device.type == "cuda" else [])
        for amp in amps:
            rt.amp_dtype = amp
            name = {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp]
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
            scaler = torch.amp.GradScaler(rt.device.type, enabled=amp == torch.float16)
            loss_fn = torch.nn.BCEWithLogitsLoss()
            x, y = rt.to_device(batch[0]), batch[1].to(rt.device)

            def step(x=x, y=y):
                train_step(model, x, y, loss_fn, opt, scaler, rt)

            model.train()
            for _ in range(warmup):
                step()
            _sync(rt)
            t0 = time.perf_counter()
            for _ in range(n_batches):
                step()
            _sync(rt)
            results.append({**base, "what": "train_step", "amp": name,
                            "samples_per_s": _rate(n_batches * bs, time.perf_counter() - t0)})

            it = iter(loader)
            t0 = time.perf_counter()
            count = 0
            for _ in range(n_batches):
                bx, by, _ = next(it)
                step(rt.to_device(bx), by.to(rt.device))
                count += len(bx)
            _sync(rt)
            results.append({**base, "what": "train_end_to_end", "amp": name,
                            "samples_per_s": _rate(count, time.perf_counter() - t0)})

            model.eval()
            with torch.inference_mode(), rt.autocast():
                for _ in range(warmup):
                    model(x)
                _sync(rt)
                t0 = time.perf_counter()
                for _ in range(n_batches):
                    model(x)
                _sync(rt)
            results.append({**base, "what": "inference", "amp": name,
                            "samples_per_s": _rate(n_batches * bs, time.perf_counter() - t0)})
        loader = None  # its persistent workers stop with it
    return results
