"""The one k-fold trainer behind ``mmdf train audio|visual``.

For each fold it trains a fresh timm backbone on the other folds' usable
clips, picks the epoch with the best held-out AUC, and scores the held-out
clips (OOF) and every val/test clip with that checkpoint. The branch only
changes the dataset (mel image or face crops) and how items become a clip
score. Layout under ``runs/<experiment>/<branch>/``::

    config.yaml  folds.csv  oof.csv  val_pred.csv  test_pred.csv  metrics.json
    fold_<k>/best.pt last.pt summary.csv predictions.csv   tb/fold_<k>/ (TensorBoard)

A fold is finished once its ``predictions.csv`` exists; an interrupted fold
resumes from ``last.pt`` (saved after every epoch, with the optimiser,
scheduler and epoch). Each epoch reseeds torch from (seed, fold, epoch), so
a resumed run repeats the uninterrupted run's shuffles and augmentations.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from mmdf.config import Config, save_config
from mmdf.data.folds import FOLD_COL, load_or_make_folds
from mmdf.errors import MmdfError
from mmdf.files import atomic_write
from mmdf.metrics import score_report
from mmdf.train import distributed
from mmdf.train.datasets import branch_spec, build_dataset, usable_mask
from mmdf.train.inference import clip_probs, predict_items
from mmdf.train.models import create_model, normalization
from mmdf.train.runtime import Runtime, resolve_runtime

log = logging.getLogger(__name__)

PRED_FILE = "predictions.csv"  # per fold: video_name, split, fold, prob (usable clips only)


def train_branch(cfg: Config, branch: str, folds: list[int] | None = None, force: bool = False,
                 manifest: pd.DataFrame | None = None) -> Path:
    """Train ``branch`` ('audio' or 'visual') k-fold; return ``cfg.run_dir / branch``.

    ``folds`` trains a subset (merged outputs are written once every fold is
    done); ``force`` retrains the requested folds from scratch; ``manifest``
    (contract 2 frame) defaults to ``mmdf.prepare.manifest.load_manifest(cfg)``.
    """
    spec = branch_spec(branch)
    out = cfg.run_dir / spec.name
    n = cfg.folds.n_splits
    wanted = sorted(set(folds)) if folds else list(range(n))
    bad = [k for k in wanted if not 0 <= k < n]
    if bad:
        raise MmdfError(f"--folds {bad} out of range: folds.n_splits={n} gives folds 0..{n - 1}")
    if not force and is_complete(out, n):
        log.info("%s branch already trained in %s; nothing to do (use --force to retrain)", branch, out)
        return out
    rt = resolve_runtime(cfg.train)
    try:
        _run(cfg, branch, wanted, force, manifest, out, rt)
    finally:
        distributed.teardown(rt.dist)
    return out


def is_complete(out: Path, n: int) -> bool:
    """Whether the branch folder holds every fold's predictions and the merged outputs."""
    files = ["metrics.json", "oof.csv", "val_pred.csv", "test_pred.csv"]
    return all((out / f).is_file() for f in files) and all(
        (out / f"fold_{k}" / PRED_FILE).is_file() for k in range(n))


def _run(cfg: Config, branch: str, wanted: list[int], force: bool, manifest: pd.DataFrame | None,
         out: Path, rt: Runtime) -> None:
    spec = branch_spec(branch)
    main = rt.dist.is_main
    if manifest is None:
        from mmdf.prepare.manifest import load_manifest
        manifest = load_manifest(cfg)
    manifest = manifest.reset_index(drop=True)
    missing = [c for c in ("split", "video_name", "target") if c not in manifest]
    if missing:
        raise MmdfError(f"the manifest lacks column(s) {', '.join(missing)}; re-run `mmdf prepare`")
    train_rows = manifest[manifest["split"] == "train"]
    if train_rows.empty:
        raise MmdfError("the manifest has no train clips; check data.train_labels and run `mmdf prepare`")

    folds_path = cfg.run_dir / "folds.csv"
    if main:
        load_or_make_folds(folds_path, train_rows[["video_name", "target"]], cfg.folds)
    distributed.barrier(rt.dist)
    fold_table = load_or_make_folds(folds_path, train_rows[["video_name", "target"]], cfg.folds)
    fold_of = fold_table.set_index("video_name")[FOLD_COL]
    manifest[FOLD_COL] = manifest["video_name"].map(fold_of).where(manifest["split"] == "train")
    ok = usable_mask(manifest, spec)

    if main:
        out.mkdir(parents=True, exist_ok=True)
        _warn_if_config_changed(cfg, out, force)
        save_config(cfg, out / "config.yaml")
        fold_table.to_csv(out / "folds.csv", index=False)
        if force:
            for k in wanted:
                shutil.rmtree(out / f"fold_{k}", ignore_errors=True)
                shutil.rmtree(out / "tb" / f"fold_{k}", ignore_errors=True)
            for f in ("metrics.json", "oof.csv", "val_pred.csv", "test_pred.csv"):
                (out / f).unlink(missing_ok=True)
        n_skip = int((~ok).sum())
        if n_skip:
            counts = manifest.loc[~ok, spec.status_col].value_counts().to_dict()
            log.info("%s branch: %d clip(s) without a usable %s get NaN: %s", branch, n_skip, branch, counts)
    distributed.barrier(rt.dist)

    for k in wanted:
        fold_dir = out / f"fold_{k}"
        if (fold_dir / PRED_FILE).is_file():
            if main:
                log.info("fold %d already trained; skipping", k)
            continue
        is_train = (manifest["split"] == "train").to_numpy()
        fold = manifest[FOLD_COL].to_numpy()
        fit = manifest[ok & is_train & (fold != k)]
        held = manifest[ok & is_train & (fold == k)]
        others = manifest[ok & ~is_train]
        train_fold(cfg, branch, k, fit, held, others, fold_dir, rt)
        distributed.barrier(rt.dist)

    if main and all((out / f"fold_{k}" / PRED_FILE).is_file() for k in range(cfg.folds.n_splits)):
        write_outputs(cfg, branch, manifest, out)
    elif main:
        todo = [k for k in range(cfg.folds.n_splits) if not (out / f"fold_{k}" / PRED_FILE).is_file()]
        log.info("folds %s not trained yet: oof.csv/val_pred.csv/test_pred.csv are written once they are", todo)
    distributed.barrier(rt.dist)


def _warn_if_config_changed(cfg: Config, out: Path, force: bool) -> None:
    """Finished folds are kept on rerun; say so when they were trained with other settings."""
    saved = out / "config.yaml"
    done = sorted(out.glob(f"fold_*/{PRED_FILE}"))
    if force or not saved.is_file() or not done:
        return
    import yaml

    from mmdf.config import to_dict

    old, new = yaml.safe_load(saved.read_text()), to_dict(cfg)
    for section in (old, new):
        section.get("train", {}).pop("progress", None)
    if old != new:
        log.warning("the config differs from the one %d finished fold(s) in %s were trained with; "
                    "they are kept (use --force to retrain them)", len(done), out)


# --------------------------------------------------------------------------- one fold


def _epoch_seed(seed: int, fold: int, epoch: int) -> int:
    return (seed * 1_000_003 + fold * 10_007 + epoch) % (2**31)


def train_fold(cfg: Config, branch: str, k: int, fit: pd.DataFrame, held: pd.DataFrame,
               others: pd.DataFrame, fold_dir: Path, rt: Runtime) -> None:
    """Train fold ``k`` on ``fit``, select by AUC on ``held``, write its predictions."""
    tcfg = cfg.train
    bcfg = getattr(tcfg, branch)
    d = rt.dist
    main = d.is_main
    if fit["target"].nunique() < 2 or held["target"].nunique() < 2:
        raise MmdfError(
            f"fold {k} of the {branch} branch lacks real or fake clips among its usable clips "
            f"(train part {fit['target'].value_counts().to_dict()}, held-out part "
            f"{held['target'].value_counts().to_dict()}); too few clips have a usable {branch} "
            "modality for this many folds: lower folds.n_splits"
        )
    seed = cfg.seed + 1000 * k
    torch.manual_seed(seed)
    model = create_model(bcfg.model, key=f"train.{branch}.model")
    norm = normalization(model, bcfg.model.in_chans)
    model.to(rt.device)
    if rt.channels_last:
        model.to(memory_format=torch.channels_last)
    net = DistributedDataParallel(model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None) \
        if d.enabled else model

    train_ds = build_dataset(branch, fit, tcfg, *norm, train=True)
    held_ds = build_dataset(branch, held, tcfg, *norm, train=False)
    held_y = held["target"].astype(int).to_numpy()
    per_rank = max(1, tcfg.batch_size // d.world_size)
    # The same permutation for any world size: rank r takes items r, r+W, ... of it, so a
    # global batch holds the same items whether run on one process or several.
    sampler = DistributedSampler(train_ds, d.world_size, d.rank, shuffle=True, seed=seed)
    loader = DataLoader(train_ds, per_rank, sampler=sampler, num_workers=tcfg.num_workers,
                        pin_memory=rt.device.type == "cuda", drop_last=len(sampler) > per_rank,
                        persistent_workers=False)
    steps = len(loader)

    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2

    o, s = tcfg.optimizer, tcfg.schedule
    optimizer = create_optimizer_v2(model, opt=o.name, lr=o.lr, weight_decay=o.weight_decay, momentum=o.momentum)
    scheduler = None
    if s.name != "none":
        scheduler, _ = create_scheduler_v2(
            optimizer, sched=s.name, num_epochs=tcfg.epochs, decay_epochs=s.decay_epochs,
            decay_rate=s.decay_rate, min_lr=s.min_lr, warmup_lr=s.warmup_lr,
            warmup_epochs=s.warmup_epochs, step_on_epochs=False, updates_per_epoch=steps)
    scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.amp_dtype == torch.float16)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    state = {"epoch": -1, "best_auc": -math.inf, "best_epoch": -1, "bad_epochs": 0,
             "stopped": False, "history": [], "seconds": 0.0}
    last = fold_dir / "last.pt"
    if last.is_file():
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler"):
            scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        state = ckpt["state"]
        if main:
            log.info("%s fold %d: resuming from %s after epoch %d", branch, k, last, state["epoch"])

    writer = None
    if main:
        fold_dir.mkdir(parents=True, exist_ok=True)
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(str(fold_dir.parent / "tb" / f"fold_{k}"))
        log.info("%s fold %d: %d train items (%d clips), %d held-out clips, %d val/test clips, %d steps/epoch",
                 branch, k, len(train_ds), len(fit), len(held), len(others), steps)

    for epoch in range(state["epoch"] + 1, tcfg.epochs):
        if state["stopped"]:
            break
        t0 = time.perf_counter()
        torch.manual_seed(_epoch_seed(cfg.seed, k, epoch))  # augmentation, dropout, worker seeds
        sampler.set_epoch(epoch)
        net.train()
        total, count = 0.0, 0
        bar = tqdm(loader, desc=f"{branch} fold {k} epoch {epoch}", leave=False,
                   disable=not (tcfg.progress and main))
        t_first = time.perf_counter()
        for i, (x, y, _) in enumerate(bar):
            x, y = rt.to_device(x), y.to(rt.device, non_blocking=True)
            loss = train_step(net, x, y, loss_fn, optimizer, scaler, rt)
            if scheduler is not None:
                scheduler.step_update(epoch * steps + i + 1)
            total += float(loss.detach()) * len(y)
            count += len(y)
            rate = count * d.world_size / max(time.perf_counter() - t_first, 1e-9)
            bar.set_postfix(loss=f"{total / count:.4f}", samples_s=f"{rate:.0f}")
        train_time = time.perf_counter() - t0
        train_loss = distributed.all_reduce_mean(d, total / max(count, 1))
        throughput = count * d.world_size / max(train_time, 1e-9)

        probs = clip_probs(held_ds, predict_items(model, held_ds, branch, tcfg, rt, tta=False,
                                                  desc=f"{branch} fold {k} eval"), branch, tcfg)
        auc, tpr, held_loss = _held_scores(held_y, probs)
        if scheduler is not None:
            scheduler.step(epoch + 1, auc)
        improved = auc > state["best_auc"] or state["best_epoch"] < 0
        if improved:
            state.update(best_auc=auc, best_epoch=epoch, bad_epochs=0)
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch
        state["seconds"] += time.perf_counter() - t0
        state["stopped"] = bool(tcfg.patience and state["bad_epochs"] >= tcfg.patience)
        row = {"epoch": epoch, "train_loss": train_loss, "held_loss": held_loss, "held_auc": auc,
               "held_tpr@fpr=0.001": tpr, "lr": optimizer.param_groups[0]["lr"],
               "train_samples_per_s": throughput, "epoch_seconds": time.perf_counter() - t0,
               "best": improved}
        state["history"].append(row)
        if main:
            extra = {"branch": branch, "fold": k, "model_cfg": asdict(bcfg.model), "mean": norm[0],
                     "std": norm[1], "epoch": epoch, "held_auc": auc}
            if improved:
                _save(fold_dir / "best.pt", {"model": model.state_dict(), **extra})
            _save(last, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict() if scheduler is not None else None,
                         "scaler": scaler.state_dict(), "state": state, **extra})
            pd.DataFrame(state["history"]).to_csv(fold_dir / "summary.csv", index=False)
            for key in ("train_loss", "held_loss", "held_auc", "lr", "train_samples_per_s"):
                writer.add_scalar(key, row[key], epoch)
            writer.flush()
            log.info("%s fold %d epoch %d: loss %.4f, held-out AUC %.4f (best %.4f @ %d), %.0f samples/s",
                     branch, k, epoch, train_loss, auc, state["best_auc"], state["best_epoch"], throughput)
        distributed.barrier(d)
    if writer is not None:
        writer.close()

    # Predict with the best epoch's weights (test-time augmentation on).
    distributed.barrier(d)
    best = torch.load(fold_dir / "best.pt", map_location="cpu", weights_only=False)
    model.load_state_dict(best["model"])
    rows = pd.concat([held, others])
    ds = build_dataset(branch, rows, tcfg, *norm, train=False)
    prob = clip_probs(ds, predict_items(model, ds, branch, tcfg, rt, tta=True,
                                        desc=f"{branch} fold {k} predict"), branch, tcfg)
    if main:
        pred = pd.DataFrame({"video_name": rows["video_name"].to_numpy(), "split": rows["split"].to_numpy(),
                             "fold": k, "prob": prob})
        _write_csv(pred, fold_dir / PRED_FILE)


def train_step(net, x: torch.Tensor, y: torch.Tensor, loss_fn, optimizer, scaler, rt: Runtime) -> torch.Tensor:
    """One optimisation step on a batch (B, C, H, W) with targets (B,); returns the loss."""
    with rt.autocast():
        loss = loss_fn(net(x).float().squeeze(1), y)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss


def _held_scores(y: np.ndarray, probs: np.ndarray) -> tuple[float, float, float]:
    """AUC, TPR@FPR=1e-3 and log-loss of the held-out part."""
    report = score_report(y, probs)
    p = np.clip(probs, 1e-7, 1 - 1e-7)
    loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return report["auc"], report["tpr@fpr=0.001"], loss


def _save(path: Path, obj: dict) -> None:
    """Write atomically, so a kill during the write never leaves a truncated checkpoint."""
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)


# --------------------------------------------------------------------------- merged outputs


def write_outputs(cfg: Config, branch: str, manifest: pd.DataFrame, out: Path) -> dict:
    """oof.csv, val_pred.csv, test_pred.csv and metrics.json from the folds' predictions."""
    spec = branch_spec(branch)
    n = cfg.folds.n_splits
    preds = pd.concat([pd.read_csv(out / f"fold_{k}" / PRED_FILE, dtype={"video_name": str})
                       for k in range(n)], ignore_index=True)
    status = manifest[spec.status_col].astype(str)

    train = manifest[manifest["split"] == "train"]
    oof_prob = preds[preds["split"] == "train"].set_index("video_name")["prob"]
    if oof_prob.index.duplicated().any():
        raise MmdfError(f"{out}: a train clip was predicted by more than one fold; "
                        "the folds changed between runs: retrain with --force")
    oof = pd.DataFrame({
        "video_name": train["video_name"].to_numpy(),
        "fold": train[FOLD_COL].astype(int).to_numpy(),
        "target": train["target"].astype(int).to_numpy(),
        "prob": train["video_name"].map(oof_prob).to_numpy(dtype=float),
        "status": status[train.index].to_numpy(),
    })
    _write_csv(oof, out / "oof.csv")

    fold_mean = preds[preds["split"] != "train"].groupby("video_name")["prob"].mean()
    for split, name in (("val", "val_pred.csv"), ("test", "test_pred.csv")):
        rows = manifest[manifest["split"] == split]
        frame = pd.DataFrame({"video_name": rows["video_name"].to_numpy()})
        if split == "val":
            frame["target"] = rows["target"].astype("Int8").to_numpy()
        frame["prob"] = rows["video_name"].map(fold_mean).to_numpy(dtype=float)
        frame["status"] = status[rows.index].to_numpy()
        _write_csv(frame, out / name)

    metrics = build_metrics(cfg, branch, oof, out)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    log.info("%s branch: OOF AUC %s, val AUC %s -> %s", branch,
             _fmt(metrics["oof"]), _fmt(metrics.get("val")), out)
    return metrics


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_write(path) as tmp:
        frame.to_csv(tmp, index=False)


def _fmt(report: dict | None) -> str:
    return f"{report['auc']:.4f}" if report else "n/a"


def _report(y, p) -> dict | None:
    """score_report over the scored clips, or None when one class is absent."""
    y = np.asarray(y)
    p = np.asarray(p, dtype=float)
    keep = ~np.isnan(p)
    if keep.sum() == 0 or len(np.unique(y[keep])) < 2:
        return None
    return score_report(y[keep].astype(int), p[keep])


def build_metrics(cfg: Config, branch: str, oof: pd.DataFrame, out: Path) -> dict:
    """Per fold, overall OOF, val, and per fake kind where the demo manifest tells kinds."""
    folds = {}
    seconds = 0.0
    for k in range(cfg.folds.n_splits):
        part = oof[oof["fold"] == k]
        summary = out / f"fold_{k}" / "summary.csv"
        hist = pd.read_csv(summary) if summary.is_file() else pd.DataFrame()
        folds[str(k)] = {
            **(_report(part["target"], part["prob"]) or {}),
            "best_epoch": int(hist.loc[hist["held_auc"].idxmax(), "epoch"]) if len(hist) else None,
            "epochs_run": int(len(hist)),
        }
        seconds += float(hist["epoch_seconds"].sum()) if len(hist) else 0.0
    metrics = {
        "branch": branch,
        "experiment": cfg.experiment,
        "folds": folds,
        "oof": _report(oof["target"], oof["prob"]),
        "oof_missing": {str(s): int(c) for s, c in oof.loc[oof["prob"].isna(), "status"].value_counts().items()},
        "val": None,
        "train_seconds": seconds,
    }
    val = pd.read_csv(out / "val_pred.csv")
    if len(val) and "target" in val and val["target"].notna().all():
        metrics["val"] = _report(val["target"], val["prob"])
    kinds_path = Path(cfg.data.root) / "manifest.csv"
    if kinds_path.is_file():
        kinds = pd.read_csv(kinds_path, dtype={"video_name": str})
        if {"video_name", "kind", "split"} <= set(kinds.columns):
            for name, frame in (("oof", oof), ("val", val)):
                split = "train" if name == "oof" else "val"
                kind = frame["video_name"].map(kinds[kinds["split"] == split].set_index("video_name")["kind"])
                by_kind = {}
                for fake in sorted(k for k in kind.dropna().unique() if k != "real"):
                    sel = (kind == "real") | (kind == fake)
                    by_kind[fake] = _report(frame.loc[sel, "target"], frame.loc[sel, "prob"])
                metrics[f"{name}_by_kind"] = by_kind
    return metrics
