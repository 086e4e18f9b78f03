"""Scoring a branch's dataset with a model: batched, test-time views, gathered over ranks.

Used by the fold loop (held-out fold, val and test) and by
:class:`mmdf.train.trained.TrainedBranch` (a finished run on new clips).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from mmdf.train import distributed
from mmdf.train.branches.base import Branch
from mmdf.train.config import TrainConfig
from mmdf.train.runtime import Runtime


def predict_items(model: torch.nn.Module, dataset, branch: Branch, cfg: TrainConfig, rt: Runtime,
                  tta: bool = True, desc: str = "predict") -> np.ndarray:
    """One logit per dataset item (mean over the branch's test-time views), from all ranks, in item order."""
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
    section = branch.section(cfg)
    model.eval()
    out = []
    bar = tqdm(loader, desc=desc, leave=False, disable=not (cfg.progress and rt.dist.is_main))
    with torch.inference_mode(), rt.autocast():
        for x, _, _ in bar:
            x = rt.to_device(x)
            xs = branch.tta_views(x, section) if tta else [x]
            logits = torch.stack([model(v).float().squeeze(1) for v in xs]).mean(0)
            out.append(logits.cpu().numpy())
    logits = np.concatenate(out).astype(np.float64)
    result = np.full(len(dataset), np.nan)
    for idx, val in distributed.all_gather_objects(rt.dist, (order, logits)):
        result[idx] = val
    return result


def clip_probs(branch: Branch, cfg: TrainConfig, dataset, item_logits: np.ndarray) -> np.ndarray:
    """Probability per clip of ``dataset`` (its rows' order) from item logits."""
    agg = branch.aggregate(item_logits, dataset.item_clip, branch.section(cfg))
    return agg.reindex(range(len(dataset.files))).to_numpy(dtype=np.float64)
