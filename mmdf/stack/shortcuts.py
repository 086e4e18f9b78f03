"""Shortcut guard: how well clip metadata alone (duration, audio present, faces found...) tells fakes.

A stacker given metadata can learn a dataset's shortcut (on one real speech
set the clip duration alone gave AUC 0.83) that no other dataset shares. So
every stack also cross-validates a metadata-only model on the same folds and
scores each cue alone; where either reaches :data:`WARN_AUC` the log and the
report say so in words, and ``stack.use_metadata=false`` keeps metadata out.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from mmdf.metrics import SHORTCUT_AUC, cue_auc
from mmdf.stack.baselines import LogisticStacker
from mmdf.stack.evaluate import cross_val_oof
from mmdf.stack.features import metadata_features

log = logging.getLogger(__name__)

WARN_AUC = SHORTCUT_AUC


def _auc(y: np.ndarray, x: pd.Series) -> float | None:
    """A cue's AUC in its better direction; None where it cannot tell (one class, one value)."""
    auc = cue_auc(y, x.to_numpy(dtype=float))
    return None if np.isnan(auc) or x.nunique() < 2 else max(auc, 1.0 - auc)


def shortcut_check(manifest: pd.DataFrame, names: list[str], y: np.ndarray, fold: np.ndarray,
                   seed: int) -> dict:
    """``{model_auc, cues: {cue: auc}, warnings: [...]}`` on the train clips' metadata."""
    meta = metadata_features(manifest, "train", names)
    meta = meta.loc[:, meta.notna().any()]
    cues = {c: _auc(y, meta[c]) for c in meta.columns}
    model_auc = None
    if len(meta.columns) and len(np.unique(y)) == 2:
        oof = cross_val_oof(LogisticStacker(seed=seed), meta, y, fold)
        model_auc = float(roc_auc_score(y, oof))
    warnings = []
    if model_auc is not None and model_auc >= WARN_AUC:
        warnings.append(f"clip metadata alone ({', '.join(meta.columns)}) separates fake from real at "
                        f"stacked-OOF AUC {model_auc:.3f}: the stacker may learn this dataset's shortcut; "
                        "set stack.use_metadata=false to keep metadata out of it")
    for cue, auc in cues.items():
        if auc is not None and auc >= WARN_AUC:
            warnings.append(f"`{cue}` alone separates fake from real at AUC {auc:.3f}")
    for w in warnings:
        log.warning("shortcut check: %s", w)
    return {"model_auc": model_auc, "cues": cues, "warnings": warnings}
