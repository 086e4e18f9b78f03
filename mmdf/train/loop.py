"""One fold of a torch branch: the model, its epoch loop on a small typed state, its predictions.

A fold trains a fresh timm backbone on the other folds' usable clips, keeps
the epoch with the best held-out AUC (``best.pt``), and scores its held-out
clips (OOF) and every val/test clip with those weights. ``last.pt`` (saved
after every epoch with the optimiser, scheduler and :class:`FoldState`) lets
an interrupted fold resume; each epoch reseeds torch from (seed, fold,
epoch), so a resumed run repeats the uninterrupted run's shuffles and
augmentations.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import log_loss
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from mmdf.errors import MmdfError
from mmdf.files import atomic_write
from mmdf.metrics import TPR_KEY, score_report
from mmdf.train import distributed
from mmdf.train.branches.base import Branch
from mmdf.train.checkpoint import load_checkpoint, save_checkpoint
from mmdf.train.runtime import Runtime
from mmdf.train.scoring import clip_probs, predict_items

log = logging.getLogger(__name__)

PRED_FILE = "predictions.csv"  # per fold: video_name, split, fold, prob (usable clips only)


@dataclass
class FoldJob:
    """What one fold trains on and where it writes."""

    cfg: Any  # the run's config (mmdf.run_config.Config, assembled above this layer)
    branch: Branch
    k: int
    fit: pd.DataFrame  # usable train clips of the other folds
    held: pd.DataFrame  # usable train clips of this fold
    others: pd.DataFrame  # usable val/test clips
    fold_dir: Path
    rt: Runtime


@dataclass
class FoldState:
    """Where a fold's training stands; saved in ``last.pt`` as a plain dict."""

    epoch: int = -1
    best_auc: float = -math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    stopped: bool = False
    seconds: float = 0.0
    history: list[dict] = field(default_factory=list)


@dataclass
class Training:
    """The objects of one fold's optimisation."""

    model: torch.nn.Module
    net: torch.nn.Module  # the model, or its DDP wrapper
    norm: tuple[list[float], list[float]]
    loader: DataLoader
    sampler: DistributedSampler
    held_ds: object
    optimizer: torch.optim.Optimizer
    scheduler: object | None
    scaler: torch.amp.GradScaler
    loss_fn: torch.nn.Module


def epoch_seed(seed: int, fold: int, epoch: int) -> int:
    return (seed * 1_000_003 + fold * 10_007 + epoch) % (2**31)


def train_fold(job: FoldJob) -> None:
    """Train fold ``job.k`` on ``job.fit``, select by AUC on ``job.held``, write its predictions."""
    check_classes(job)
    torch.manual_seed(job.cfg.seed + 1000 * job.k)
    tr = build_training(job)
    state = resume(job, tr)
    writer = _writer(job, tr, state)
    for epoch in range(state.epoch + 1, job.cfg.train.epochs):
        if state.stopped:
            break
        run_epoch(job, tr, state, epoch, writer)
        distributed.barrier(job.rt.dist)
    if writer is not None:
        writer.close()
    distributed.barrier(job.rt.dist)
    predict_with_best(job, tr)


def check_classes(job: FoldJob) -> None:
    fit_ok = (job.fit["target"] == 0).any() if job.branch.self_supervised else job.fit["target"].nunique() == 2
    if not fit_ok or job.held["target"].nunique() < 2:
        name = job.branch.name
        raise MmdfError(
            f"fold {job.k} of the {name} branch lacks real or fake clips among its usable clips "
            f"(train part {job.fit['target'].value_counts().to_dict()}, held-out part "
            f"{job.held['target'].value_counts().to_dict()}); too few clips have a usable {name} "
            "modality for this many folds: lower folds.n_splits"
        )


def build_training(job: FoldJob) -> Training:
    """Model (DDP-wrapped when launched so), loaders, optimiser and schedule of a fold."""
    tcfg, rt, branch = job.cfg.train, job.rt, job.branch
    section = branch.section(tcfg)
    model = branch.create_model(section.model, job.cfg.prepare)
    fit = branch.training_rows(job.fit)
    norm = branch.normalization(model, section, fit)
    model.to(rt.device)
    if rt.channels_last:
        model.to(memory_format=torch.channels_last)
    ddp_ids = [rt.device.index] if rt.device.type == "cuda" else None
    net = DistributedDataParallel(model, device_ids=ddp_ids) if rt.dist.enabled else model
    train_ds = branch.dataset(fit, section, *norm, train=True)
    held_ds = branch.dataset(job.held, section, *norm, train=False)
    d = rt.dist
    per_rank = max(1, tcfg.batch_size // d.world_size)
    # The same permutation for any world size: rank r takes items r, r+W, ... of it, so a
    # global batch holds the same items whether run on one process or several.
    sampler = DistributedSampler(train_ds, d.world_size, d.rank, shuffle=True, seed=job.cfg.seed + 1000 * job.k)
    loader = DataLoader(train_ds, per_rank, sampler=sampler, num_workers=tcfg.num_workers,
                        pin_memory=rt.device.type == "cuda", drop_last=len(sampler) > per_rank,
                        persistent_workers=False)
    optimizer, scheduler = _optimizer(model, tcfg, len(loader))
    scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.amp_dtype == torch.float16)
    return Training(model, net, norm, loader, sampler, held_ds, optimizer, scheduler, scaler,
                    torch.nn.BCEWithLogitsLoss())


def _optimizer(model: torch.nn.Module, tcfg, steps: int):
    """timm's optimiser and per-iteration scheduler from the config."""
    o, s = tcfg.optimizer, tcfg.schedule
    optimizer = create_optimizer_v2(model, opt=o.name, lr=o.lr, weight_decay=o.weight_decay, momentum=o.momentum)
    if s.name == "none":
        return optimizer, None
    scheduler, _ = create_scheduler_v2(
        optimizer, sched=s.name, num_epochs=tcfg.epochs, decay_epochs=s.decay_epochs,
        decay_rate=s.decay_rate, min_lr=s.min_lr, warmup_lr=s.warmup_lr,
        warmup_epochs=s.warmup_epochs, step_on_epochs=False, updates_per_epoch=steps)
    return optimizer, scheduler


def resume(job: FoldJob, tr: Training) -> FoldState:
    """The state after the last finished epoch of an interrupted fold, or a fresh one."""
    last = job.fold_dir / "last.pt"
    if not last.is_file():
        return FoldState()
    ckpt = load_checkpoint(last)
    tr.model.load_state_dict(ckpt["model"])
    tr.optimizer.load_state_dict(ckpt["optimizer"])
    if tr.scheduler is not None and ckpt.get("scheduler"):
        tr.scheduler.load_state_dict(ckpt["scheduler"])
    if ckpt.get("scaler"):
        tr.scaler.load_state_dict(ckpt["scaler"])
    state = FoldState(**ckpt["state"])
    if job.rt.dist.is_main:
        log.info("%s fold %d: resuming from %s after epoch %d", job.branch.name, job.k, last, state.epoch)
    return state


def _writer(job: FoldJob, tr: Training, state: FoldState):
    """TensorBoard writer of the main process (None elsewhere)."""
    if not job.rt.dist.is_main:
        return None
    # deferred: tensorboard takes seconds to import, and only the main process writes the log
    from torch.utils.tensorboard import SummaryWriter

    job.fold_dir.mkdir(parents=True, exist_ok=True)
    log.info("%s fold %d: %d train items (%d clips), %d held-out clips, %d val/test clips, %d steps/epoch",
             job.branch.name, job.k, len(tr.loader.dataset), len(job.fit), len(job.held), len(job.others),
             len(tr.loader))
    return SummaryWriter(str(job.fold_dir.parent / "tb" / f"fold_{job.k}"))


def run_epoch(job: FoldJob, tr: Training, state: FoldState, epoch: int, writer) -> None:
    """Train one epoch, score the held-out fold, update the state and the fold's files."""
    t0 = time.perf_counter()
    torch.manual_seed(epoch_seed(job.cfg.seed, job.k, epoch))  # augmentation, dropout, worker seeds
    tr.sampler.set_epoch(epoch)
    train_loss, throughput = _train_pass(job, tr, epoch)
    held_y = job.held["target"].astype(int).to_numpy()
    probs = clip_probs(job.branch, job.cfg.train, tr.held_ds,
                       predict_items(tr.model, tr.held_ds, job.branch, job.cfg.train, job.rt, tta=False,
                                     desc=f"{job.branch.name} fold {job.k} eval"))
    auc, tpr, held_loss = held_scores(held_y, probs)
    if tr.scheduler is not None:
        tr.scheduler.step(epoch + 1, auc)
    improved = auc > state.best_auc or state.best_epoch < 0
    if improved:
        state.best_auc, state.best_epoch, state.bad_epochs = auc, epoch, 0
    else:
        state.bad_epochs += 1
    state.epoch = epoch
    state.seconds += time.perf_counter() - t0
    patience = job.cfg.train.patience
    state.stopped = bool(patience and state.bad_epochs >= patience)
    row = {"epoch": epoch, "train_loss": train_loss, "held_loss": held_loss, "held_auc": auc,
           f"held_{TPR_KEY}": tpr, "lr": float(tr.optimizer.param_groups[0]["lr"]),
           "train_samples_per_s": throughput, "epoch_seconds": time.perf_counter() - t0, "best": improved}
    state.history.append(row)
    if job.rt.dist.is_main:
        save_epoch(job, tr, state, row, writer)


def _train_pass(job: FoldJob, tr: Training, epoch: int) -> tuple[float, float]:
    """One pass over the training loader; (mean loss over ranks, samples/s)."""
    d, rt = job.rt.dist, job.rt
    tr.net.train()
    total, count = 0.0, 0
    steps = len(tr.loader)
    bar = tqdm(tr.loader, desc=f"{job.branch.name} fold {job.k} epoch {epoch}", leave=False,
               disable=not (job.cfg.train.progress and d.is_main))
    t_first = time.perf_counter()
    for i, (x, y, _) in enumerate(bar):
        x, y = rt.to_device(x), y.to(rt.device, non_blocking=True)
        loss = train_step(tr.net, x, y, tr.loss_fn, tr.optimizer, tr.scaler, rt)
        if tr.scheduler is not None:
            tr.scheduler.step_update(epoch * steps + i + 1)
        total += float(loss.detach()) * len(y)
        count += len(y)
        rate = count * d.world_size / max(time.perf_counter() - t_first, 1e-9)
        bar.set_postfix(loss=f"{total / count:.4f}", samples_s=f"{rate:.0f}")
    seconds = time.perf_counter() - t_first
    return distributed.all_reduce_mean(d, total / max(count, 1)), count * d.world_size / max(seconds, 1e-9)


def train_step(net, x: torch.Tensor, y: torch.Tensor, loss_fn, optimizer, scaler, rt: Runtime) -> torch.Tensor:
    """One optimisation step on a batch (B, C, H, W) with targets (B,); returns the loss."""
    with rt.autocast():
        loss = loss_fn(net(x).float().squeeze(1), y)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss


def held_scores(y: np.ndarray, probs: np.ndarray) -> tuple[float, float, float]:
    """AUC, TPR@FPR=1e-3 and log-loss of the held-out part."""
    report = score_report(y, probs)
    loss = float(log_loss(y, np.clip(probs, 1e-7, 1 - 1e-7), labels=[0, 1]))
    return report["auc"], report[TPR_KEY], loss


def save_epoch(job: FoldJob, tr: Training, state: FoldState, row: dict, writer) -> None:
    """best.pt (when improved), last.pt, summary.csv and TensorBoard scalars of an epoch."""
    section = job.branch.section(job.cfg.train)
    extra = {"branch": job.branch.name, "fold": job.k, "model_cfg": asdict(section.model),
             "mean": tr.norm[0], "std": tr.norm[1], "epoch": row["epoch"], "held_auc": row["held_auc"]}
    if row["best"]:
        save_checkpoint(job.fold_dir / "best.pt", {"model": tr.model.state_dict(), **extra})
    save_checkpoint(job.fold_dir / "last.pt", {
        "model": tr.model.state_dict(), "optimizer": tr.optimizer.state_dict(),
        "scheduler": tr.scheduler.state_dict() if tr.scheduler is not None else None,
        "scaler": tr.scaler.state_dict(), "state": asdict(state), **extra})
    write_csv(pd.DataFrame(state.history), job.fold_dir / "summary.csv")
    for key in ("train_loss", "held_loss", "held_auc", "lr", "train_samples_per_s"):
        writer.add_scalar(key, row[key], row["epoch"])
    writer.flush()
    log.info("%s fold %d epoch %d: loss %.4f, held-out AUC %.4f (best %.4f @ %d), %.0f samples/s",
             job.branch.name, job.k, row["epoch"], row["train_loss"], row["held_auc"], state.best_auc,
             state.best_epoch, row["train_samples_per_s"])


def predict_with_best(job: FoldJob, tr: Training) -> None:
    """Score held-out and val/test clips with the best epoch's weights (test-time views on)."""
    best = load_checkpoint(job.fold_dir / "best.pt")
    tr.model.load_state_dict(best["model"])
    rows = pd.concat([job.held, job.others])
    tcfg = job.cfg.train
    ds = job.branch.dataset(rows, job.branch.section(tcfg), *tr.norm, train=False)
    prob = clip_probs(job.branch, tcfg, ds, predict_items(tr.model, ds, job.branch, tcfg, job.rt, tta=True,
                                                           desc=f"{job.branch.name} fold {job.k} predict"))
    if job.rt.dist.is_main:
        pred = pd.DataFrame({"video_name": rows["video_name"].to_numpy(), "split": rows["split"].to_numpy(),
                             "fold": job.k, "prob": prob})
        write_csv(pred, job.fold_dir / PRED_FILE)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_write(path) as tmp:
        frame.to_csv(tmp, index=False)
