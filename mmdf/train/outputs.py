"""A branch's merged outputs: OOF for train clips, fold means for val/test, and its metrics.

Predictions are keyed by (split, video_name): a val clip and a test clip of
the same name are two clips. A clip the branch could not score keeps a
missing probability and its status, never a made-up number.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from mmdf.data.folds import FOLD_COL
from mmdf.data.kinds import load_kinds
from mmdf.errors import MmdfError
from mmdf.files import atomic_write
from mmdf.metrics import score_report, shift_report, shift_sentence
from mmdf.train.branches.base import Branch
from mmdf.train.loop import PRED_FILE

log = logging.getLogger(__name__)

SPLIT_FILES = {"train": "oof.csv", "val": "val_pred.csv", "test": "test_pred.csv"}
MERGED_FILES = ("metrics.json", *SPLIT_FILES.values())


def write_outputs(cfg, branch: Branch, manifest: pd.DataFrame, out: Path) -> dict:
    """oof.csv, val_pred.csv, test_pred.csv and (last: it marks the branch finished) metrics.json."""
    preds = pd.concat([pd.read_csv(out / f"fold_{k}" / PRED_FILE, dtype={"video_name": str})
                       for k in range(cfg.folds.n_splits)], ignore_index=True)
    oof = oof_frame(branch, manifest, preds, out)
    write_csv(oof, out / SPLIT_FILES["train"])
    fold_mean = preds[preds["split"] != "train"].groupby(["split", "video_name"])["prob"].mean()
    frames = {"train": oof}
    for split in ("val", "test"):
        frames[split] = split_frame(branch, manifest, split, fold_mean)
        write_csv(frames[split], out / SPLIT_FILES[split])
    metrics = build_metrics(cfg, branch, frames, out)
    with atomic_write(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    log.info("%s branch: OOF AUC %s, val AUC %s -> %s", branch.name, _fmt(metrics["oof"]),
             _fmt(metrics.get("val")), out)
    return metrics


def oof_frame(branch: Branch, manifest: pd.DataFrame, preds: pd.DataFrame, out: Path) -> pd.DataFrame:
    """video_name, fold, target, prob, status of every train clip (prob NaN where unusable)."""
    train = manifest[manifest["split"] == "train"]
    oof_prob = preds[preds["split"] == "train"].set_index("video_name")["prob"]
    if oof_prob.index.duplicated().any():
        raise MmdfError(f"{out}: a train clip was predicted by more than one fold; "
                        "the folds changed between runs: retrain with --force")
    return pd.DataFrame({
        "video_name": train["video_name"].to_numpy(),
        "fold": train[FOLD_COL].astype(int).to_numpy(),
        "target": train["target"].astype(int).to_numpy(),
        "prob": train["video_name"].map(oof_prob).to_numpy(dtype=float),
        "status": train[branch.status_col].astype(str).to_numpy(),
    })


def split_frame(branch: Branch, manifest: pd.DataFrame, split: str, fold_mean: pd.Series) -> pd.DataFrame:
    """video_name, [target], prob, status of a val/test split from the folds' mean."""
    rows = manifest[manifest["split"] == split]
    frame = pd.DataFrame({"video_name": rows["video_name"].to_numpy()})
    if split == "val":
        frame["target"] = rows["target"].astype("Int8").to_numpy()
    keys = pd.MultiIndex.from_arrays([rows["split"].to_numpy(), rows["video_name"].to_numpy()])
    frame["prob"] = fold_mean.reindex(keys).to_numpy(dtype=float)
    frame["status"] = rows[branch.status_col].astype(str).to_numpy()
    return frame


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_write(path) as tmp:
        frame.to_csv(tmp, index=False)


def _fmt(report: dict | None) -> str:
    return f"{report['auc']:.4f}" if report else "n/a"


def report_or_none(y, p) -> dict | None:
    """score_report over the scored clips, or None when one class is absent."""
    y = np.asarray(y)
    p = np.asarray(p, dtype=float)
    keep = ~np.isnan(p)
    if keep.sum() == 0 or len(np.unique(y[keep])) < 2:
        return None
    return score_report(y[keep].astype(int), p[keep])


def _scored(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities) of the clips a branch scored."""
    keep = frame["prob"].notna()
    return frame.loc[keep, "target"].astype(int).to_numpy(), frame.loc[keep, "prob"].to_numpy(dtype=float)


def fold_reports(cfg, oof: pd.DataFrame, out: Path) -> tuple[dict, float]:
    """Per fold: its OOF scores, best epoch and epochs run; and the total training seconds."""
    folds, seconds = {}, 0.0
    for k in range(cfg.folds.n_splits):
        part = oof[oof["fold"] == k]
        summary = out / f"fold_{k}" / "summary.csv"
        hist = pd.read_csv(summary) if summary.is_file() else pd.DataFrame()
        folds[str(k)] = {
            **(report_or_none(part["target"], part["prob"]) or {}),
            "best_epoch": int(hist.loc[hist["held_auc"].idxmax(), "epoch"]) if len(hist) else None,
            "epochs_run": int(len(hist)),
        }
        seconds += float(hist["epoch_seconds"].sum()) if len(hist) else 0.0
    return folds, seconds


def by_kind(frame: pd.DataFrame, kinds: pd.Series) -> dict[str, dict | None]:
    """Scores of real clips against each kind of fake (``kinds``: video_name -> kind)."""
    kind = frame["video_name"].map(kinds)
    out = {}
    for fake in sorted(k for k in kind.dropna().unique() if k != "real"):
        sel = (kind == "real") | (kind == fake)
        out[fake] = report_or_none(frame.loc[sel, "target"], frame.loc[sel, "prob"])
    return out


def build_metrics(cfg, branch: Branch, frames: dict[str, pd.DataFrame], out: Path) -> dict:
    """Per fold, overall OOF, val, and per kind of fake where the data root names kinds."""
    oof, val = frames["train"], frames["val"]
    folds, seconds = fold_reports(cfg, oof, out)
    metrics = {
        "branch": branch.name,
        "experiment": cfg.experiment,
        "folds": folds,
        "oof": report_or_none(oof["target"], oof["prob"]),
        "oof_missing": {str(s): int(c) for s, c in oof.loc[oof["prob"].isna(), "status"].value_counts().items()},
        "val": None,
        "train_seconds": seconds,
    }
    if len(val) and "target" in val and val["target"].notna().all():
        metrics["val"] = report_or_none(val["target"].astype(int), val["prob"])
    if metrics["oof"] and metrics["val"]:
        metrics["shift"] = shift_report(_scored(oof), _scored(val), seed=cfg.seed)
        log.info("%s", shift_sentence(branch.name, metrics["shift"]))
    kinds = load_kinds(cfg.data)
    if kinds is not None:
        for name, frame, split in (("oof", oof, "train"), ("val", val, "val")):
            metrics[f"{name}_by_kind"] = by_kind(frame, kinds.get(split, pd.Series(dtype=str)))
    return metrics
