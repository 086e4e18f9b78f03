"""Stacking features: each branch's score and missing flag, plus cheap clip metadata.

One row per clip. A branch that could not score a clip (no audio, no face,
corrupt file) leaves NaN in its ``<branch>_prob`` / ``<branch>_logit`` and 1 in
``<branch>_missing``: LightGBM routes NaN natively, the linear baselines impute
(see :mod:`mmdf.stack.baselines`). Metadata lets the stacker score even a clip
that no branch could.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from mmdf.data.labels import NAME_COL
from mmdf.errors import list_offenders
from mmdf.stack.inputs import PROB_COL, BranchOutputs

log = logging.getLogger(__name__)

LOGIT_EPS = 1e-6
# manifest column -> feature; statuses become 0/1 flags
METADATA_NUMERIC = ("frames_with_face", "face_conf_mean", "duration")
METADATA_FLAGS = {"has_audio": "has_audio", "audio_ok": "audio_status", "visual_ok": "visual_status"}


def logit(p: np.ndarray | pd.Series) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), LOGIT_EPS, 1 - LOGIT_EPS)
    return np.log(p / (1 - p))


def branch_columns(branch: str) -> tuple[str, str, str]:
    return f"{branch}_prob", f"{branch}_logit", f"{branch}_missing"


def build_features(
    branches: list[BranchOutputs],
    split: str,
    names: list[str],
    manifest: pd.DataFrame | None,
) -> pd.DataFrame:
    """Feature frame (float, index ``video_name`` in the order of ``names``) for one split.

    ``manifest`` holds the prepare manifest (all splits; :mod:`mmdf.prepare.manifest`) or ``None`` to leave
    metadata out. Clips absent from the manifest get NaN metadata.
    """
    out = pd.DataFrame(index=pd.Index(names, name=NAME_COL))
    for b in branches:
        prob = b.preds[split].set_index(NAME_COL)[PROB_COL].reindex(names).astype(float)
        c_prob, c_logit, c_missing = branch_columns(b.name)
        out[c_prob] = prob.to_numpy()
        out[c_logit] = np.where(prob.isna(), np.nan, logit(prob.fillna(0.5)))
        out[c_missing] = prob.isna().astype(float).to_numpy()
    out["n_branches_scored"] = len(branches) - out[[branch_columns(b.name)[2] for b in branches]].sum(axis=1)
    if manifest is not None:
        out = out.join(metadata_features(manifest, split, names))
    return out.astype(float)


def metadata_features(manifest: pd.DataFrame, split: str, names: list[str]) -> pd.DataFrame:
    """Cheap per-clip metadata from the manifest rows of ``split`` (NaN where unknown)."""
    rows = manifest[manifest["split"] == split].drop_duplicates(NAME_COL).set_index(NAME_COL)
    absent = [n for n in names if n not in rows.index]
    if absent:
        log.warning("%d %s clip(s) have no manifest row, so no metadata (%s); is the manifest "
                    "from the same label files?", len(absent), split, list_offenders(absent))
    rows = rows.reindex(names)
    meta = pd.DataFrame(index=rows.index)
    for col in METADATA_NUMERIC:
        meta[col] = pd.to_numeric(rows[col], errors="coerce") if col in rows else np.nan
    for feature, col in METADATA_FLAGS.items():
        if col not in rows:
            meta[feature] = np.nan
        elif col == "has_audio":
            meta[feature] = rows[col].map(_as_flag)
        else:
            known = rows[col].notna()
            meta[feature] = np.where(known, (rows[col] == "ok").astype(float), np.nan)
    return meta.astype(float)


def _as_flag(v) -> float:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return np.nan
    if isinstance(v, str):
        return 1.0 if v.strip().lower() in ("true", "1", "yes") else 0.0
    return float(bool(v))
