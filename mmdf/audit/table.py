"""The audit table: AUC and TPR at low FPR per perturbation and score, against the unperturbed clips.

Each change is paired: a perturbed score is compared with the unperturbed score
of the same clips (those scored on both sides), so a clip that failed to perturb
or that a branch could not score moves neither side.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from mmdf.audit.config import BASELINE
from mmdf.errors import MmdfError
from mmdf.metrics import roc_auc, tpr_at_fpr

FPRS = (1e-3, 1e-2)
FINAL = "final"  # the stacked score, column ``prob``
METRICS = ("auc", *(f"tpr@fpr={f:g}" for f in FPRS))


def score_columns(scores: pd.DataFrame) -> dict[str, str]:
    """``{label: column}``: the final score, then each branch's (``<branch>_prob``).

    The final score is predict's stacked ``score`` (the submission's scale) where
    it reports one, else its ``prob``: an isotonic calibration maps many scores to
    one probability, and those ties would lower the AUC that the challenge measures.
    """
    branches = {c[: -len("_prob")]: c for c in scores.columns if c.endswith("_prob")}
    return {FINAL: "score" if "score" in scores.columns else "prob", **branches}


def metrics(y: np.ndarray, s: np.ndarray) -> dict[str, float]:
    """AUC and TPR at each FPR of ``FPRS``; NaN where the clips hold one class only."""
    try:
        out = {"auc": roc_auc(y, s)}
        out.update({f"tpr@fpr={f:g}": tpr_at_fpr(y, s, f) for f in FPRS})
    except MmdfError:
        out = dict.fromkeys(METRICS, np.nan)
    return out


def _counts(frame: pd.DataFrame) -> dict[str, int]:
    status = frame["perturb_status"]
    return {"n_clips": len(frame), "n_unchanged": int((status == "unchanged").sum()),
            "n_failed": int((status == "failed").sum())}


def audit_table(scores: Mapping[str, pd.DataFrame], targets) -> pd.DataFrame:
    """One row per (perturbation, score): clips scored, metrics and their change from ``BASELINE``.

    ``scores`` maps perturbation -> predict rows aligned with ``targets`` (and
    with each other); the baseline's rows must be among them.
    """
    base = scores[BASELINE]
    y = np.asarray(targets, dtype=int)
    rows = []
    for name, frame in scores.items():
        frame = frame.reindex(columns=list(dict.fromkeys([*frame.columns, *base.columns])))  # all failed: no scores
        for label, col in score_columns(base).items():
            both = (frame[col].notna() & base[col].notna()).to_numpy()
            got = metrics(y[both], frame.loc[both, col].to_numpy(float))
            ref = metrics(y[both], base.loc[both, col].to_numpy(float))
            row = {"perturbation": name, "score": label, **_counts(frame), "n_scored": int(both.sum())}
            for m in METRICS:
                row[m], row[f"d_{m}"] = got[m], got[m] - ref[m]
            rows.append(row)
    return pd.DataFrame(rows)


def status_counts(scores: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Clips per perturbation by outcome: the perturbation's own status, then predict's status."""
    rows = []
    for name, frame in scores.items():
        outcome = np.where(frame["perturb_status"] == "failed", "perturbation failed",
                           frame["status"].replace("", "unscored"))
        rows.append(pd.Series(outcome).value_counts().rename(name))
    return pd.DataFrame(rows).fillna(0).astype(int).rename_axis("perturbation").reset_index()
