"""Scoring clips with a branch model: batched, test-time augmented, gathered over ranks.

Used by the trainer (held-out fold, val and test) and by ``mmdf predict``
through :func:`predict_branch`, which averages a finished run's fold models.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from mmdf.errors import MmdfError
from mmdf.train import distributed
from mmdf.train.aggregate import aggregate_clips
from mmdf.train.augment import audio_tta_views, visual_tta_views
from mmdf.train.config import ModelConfig, TrainConfig
from mmdf.train.datasets import branch_spec, build_dataset, usable_mask
from mmdf.train.runtime import Runtime

log = logging.getLogger(__name__)


def predict_items(model: torch.nn.Module, dataset: Dataset, branch: str, cfg: TrainConfig,
                  rt: Runtime, tta: bool = True, desc: str = "predict") -> np.ndarray:
    """One logit per dataset item (mean over TTA views), from all ranks, in item order."""
    if len(dataset) == 0:
        return np.zeros(0)
    sampler = None
    order = np.arange(len(dataset))
    if rt.dist.enabled:
        # Pads by repeating items so every rank gets the same count; duplicates are dropped below.
        sampler = DistributedSampler(dataset, rt.dist.world_size, rt.dist.rank, shuffle=False)
        order = np.fromiter(iter(sampler), dtype=np.int64)
    loader = DataLoader(dataset, batch_size=max(1, cfg.eval_batch_size // rt.dist.world_size),
                        sampler=sampler, shuffle=False, num_workers=cfg.num_workers,
                        pin_memory=rt.device.type == "cuda")
    bcfg = getattr(cfg, branch)
    views = (audio_tta_views if branch == "audio" else visual_tta_views)
    model.eval()
    out = []
    bar = tqdm(loader, desc=desc, leave=False, disable=not (cfg.progress and rt.dist.is_main))
    with torch.inference_mode(), rt.autocast():
        for x, _, _ in bar:
            x = rt.to_device(x)
            xs = views(x, bcfg.tta) if tta else [x]
            logits = torch.stack([model(v).float().squeeze(1) for v in xs]).mean(0)
            out.append(logits.cpu().numpy())
    logits = np.concatenate(out).astype(np.float64)
    result = np.full(len(dataset), np.nan)
    for idx, val in distributed.all_gather_objects(rt.dist, (order, logits)):
        result[idx] = val
    return result


def clip_probs(dataset: Dataset, item_logits: np.ndarray, branch: str, cfg: TrainConfig) -> np.ndarray:
    """Probability per clip of ``dataset`` (its rows' order) from item logits."""
    n_clips = len(dataset.files)
    if branch == "audio":
        agg = aggregate_clips(item_logits, dataset.item_clip, "mean_logit")
    else:
        v = cfg.visual
        agg = aggregate_clips(item_logits, dataset.item_clip, v.aggregate, v.topk, v.confident_threshold)
    return agg.reindex(range(n_clips)).to_numpy(dtype=np.float64)


def score_rows(model: torch.nn.Module, branch: str, rows: pd.DataFrame, cfg: TrainConfig,
               rt: Runtime, norm: tuple[list[float], list[float]], tta: bool = True,
               desc: str = "predict") -> np.ndarray:
    """Probability per row of ``rows`` (all usable for ``branch``)."""
    if len(rows) == 0:
        return np.zeros(0)
    ds = build_dataset(branch, rows, cfg, *norm, train=False)
    return clip_probs(ds, predict_items(model, ds, branch, cfg, rt, tta, desc), branch, cfg)


def fold_checkpoints(branch_dir: Path) -> list[Path]:
    return sorted(Path(branch_dir).glob("fold_*/best.pt"), key=lambda p: int(p.parent.name[5:]))


def load_fold_model(path: Path, rt: Runtime) -> tuple[torch.nn.Module, dict]:
    """A fold's best model, rebuilt from the model config stored in its checkpoint."""
    from mmdf.train.models import create_model

    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    mcfg = ModelConfig(**{**ckpt["model_cfg"], "pretrained": False, "checkpoint": None})
    model = create_model(mcfg)
    model.load_state_dict(ckpt["model"])
    model.to(rt.device)
    if rt.channels_last:
        model.to(memory_format=torch.channels_last)
    return model, ckpt


def predict_branch(branch_dir: Path, manifest_rows: pd.DataFrame) -> pd.DataFrame:
    """Score already-prepared clips with every fold model of a finished branch run.

    ``manifest_rows`` are manifest rows (contract 2). Returns ``video_name,
    prob, status``: prob is the mean over folds of the clip probability, NaN
    where the branch's modality is unusable (status says why).
    """
    from mmdf.config import load_config
    from mmdf.train.runtime import resolve_runtime

    branch_dir = Path(branch_dir)
    ckpts = fold_checkpoints(branch_dir)
    if not ckpts or not (branch_dir / "config.yaml").is_file():
        raise MmdfError(f"no trained branch in {branch_dir} (expected config.yaml and fold_*/best.pt); "
                        "run `mmdf train audio|visual --config ...` first")
    cfg = load_config(branch_dir / "config.yaml")
    rt = resolve_runtime(cfg.train)
    first = torch.load(ckpts[0], map_location="cpu", weights_only=False)
    branch = first["branch"]
    spec = branch_spec(branch)
    rows = manifest_rows.reset_index(drop=True)
    ok = usable_mask(rows, spec)
    probs = np.zeros((len(ckpts), int(ok.sum())))
    for i, path in enumerate(ckpts):
        model, ckpt = load_fold_model(path, rt)
        probs[i] = score_rows(model, branch, rows[ok], cfg.train, rt, (ckpt["mean"], ckpt["std"]),
                              desc=f"{branch} {path.parent.name}")
    prob = np.full(len(rows), np.nan)
    prob[ok] = probs.mean(0)
    return pd.DataFrame({"video_name": rows["video_name"].to_numpy(), "prob": prob,
                         "status": rows[spec.status_col].astype(str).to_numpy()})
