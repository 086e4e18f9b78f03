"""Why a clip got its score: each branch's contribution to the stacked score, and a one-line reason.

The stacking method's ``contributions(X)`` splits its score into additive
terms per feature plus a ``bias``: SHAP values for LightGBM
(``pred_contrib``), the linear terms for the logistic stacker (both in
log-odds), each branch's share of the mean around the prior for the mean
methods (in probability). A branch's contribution is the sum of its
features' terms (``<branch>_prob``, ``_logit``, ``_missing``); the terms of
the other features (branches scored, clip metadata) are ``metadata_contrib``.
A positive contribution pushed the clip towards fake.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmdf.stack.features import branch_columns

OTHER = "metadata"


def branch_contributions(estimator, X: pd.DataFrame, branches: list[str]) -> pd.DataFrame:
    """``<branch>_contrib`` per branch and ``metadata_contrib``, one row per row of ``X``."""
    terms = estimator.contributions(X)
    out = pd.DataFrame(index=X.index)
    used: set[str] = {"bias"}
    for b in branches:
        cols = [c for c in branch_columns(b) if c in terms]
        out[f"{b}_contrib"] = terms[cols].sum(axis=1).to_numpy()
        used |= set(cols)
    out[f"{OTHER}_contrib"] = terms[[c for c in terms if c not in used]].sum(axis=1).to_numpy()
    return out


def reasons(frame: pd.DataFrame, branches: list[str], unit: str) -> list[str]:
    """``audio: 0.97, visual: 0.12; audio pushed most (+2.10 log-odds)``, or why the clip was not scored.

    The branch named is the one whose contribution pushed hardest towards
    the decision (towards fake for a clip called fake, else towards real).
    """
    out = []
    for _, row in frame.iterrows():
        if pd.isna(row["score"]):
            out.append(f"not scored: {row['status']}")
            continue
        probs = ", ".join(f"{b}: {row[f'{b}_prob']:.2f}" if pd.notna(row[f"{b}_prob"]) else f"{b}: -"
                          for b in branches)
        out.append(f"{probs}; {_pusher(row, branches, unit)}")
    return out


def _pusher(row: pd.Series, branches: list[str], unit: str) -> str:
    names = [*branches, OTHER]
    contrib = np.array([row[f"{n}_contrib"] for n in names], dtype=float)
    direction = -1.0 if row.get("decision") == "real" else 1.0
    if not np.isfinite(contrib).any() or np.nanmax(direction * contrib) <= 0:
        return "no part pushed it " + ("towards real" if direction < 0 else "towards fake")
    i = int(np.nanargmax(direction * contrib))
    label = "clip metadata" if names[i] == OTHER else names[i]
    return f"{label} pushed most ({contrib[i]:+.2f} {'log-odds' if unit == 'log-odds' else 'on the score'})"
