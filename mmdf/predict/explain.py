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

from mmdf.prepare.row import KIND_STATUS
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


def reasons(frame: pd.DataFrame, branches: list[str], unit: str, status_cols: list[str] | None = None) -> list[str]:
    """``audio: 0.97, visual: 0.12; audio pushed most (+2.10 log-odds)``, or why the clip was not scored.

    The branch named as the one that pushed is one that scored: among the
    scored branches (and the clip metadata), the one whose contribution pushed
    hardest towards the decision (towards fake for a clip called fake, else
    towards real). Where a branch did not score, the reason says which
    branches decided, names every unusable modality (``status_cols``: the
    manifest's per-modality statuses, where the row has them) and, if the
    absent branches' terms moved the score, by how much.
    """
    out = []
    for _, row in frame.iterrows():
        lost = unusable(row, status_cols or [])
        if pd.isna(row["score"]):
            out.append(f"not scored: {'; '.join(lost) or row['status']}")
            continue
        scored = [b for b in branches if pd.notna(row[f"{b}_prob"])]
        probs = ", ".join(f"{b}: {row[f'{b}_prob']:.2f}" if b in scored else f"{b}: -" for b in branches)
        parts = [probs]
        if len(scored) < len(branches):
            parts.append(f"decided by {', '.join(scored)}" + (f" ({'; '.join(lost)})" if lost else ""))
        parts.append(_pusher(row, scored, unit))
        absent = [b for b in branches if b not in scored]
        moved = sum(float(row[f"{b}_contrib"]) for b in absent if pd.notna(row[f"{b}_contrib"]))
        if absent and abs(moved) >= 0.005:
            parts.append(f"the missing {', '.join(absent)} moved it {moved:+.2f} {_unit(unit)}")
        out.append("; ".join(parts))
    return out


# what an unusable modality's status says ({m}: the modality, {n}: frames sampled)
STATUS_TEXT = {"no_audio": "no audio track", "no_video": "no video stream", "no_face": "no face in {n} frames",
               "too_short": "{m} too short", "corrupt": "{m} not decodable", "truncated": "{m} truncated",
               "missing": "file missing"}


def unusable(row: pd.Series, status_cols: list[str]) -> list[str]:
    """One phrase per problem of a row's unusable modalities, each said once: ``no audio track``,
    ``no face in 16 frames``, ``audio and visual too short``."""
    by_status: dict[str, list[str]] = {}
    for col in status_cols:
        status = row.get(col)
        if isinstance(status, str) and status not in ("", "ok"):
            by_status.setdefault(status, []).append(col.removesuffix("_status"))
    frames = row.get("frames_sampled")
    n = int(frames) if pd.notna(frames) else 0
    faces = KIND_STATUS["faces"].removesuffix("_status")  # the modality whose frames frames_sampled counts
    phrases = []
    for status, modalities in by_status.items():
        text = STATUS_TEXT.get(status, "{m}: {s}")
        if status == "no_face" and (faces not in modalities or n <= 0):
            text = "no face in the {m} frames looked at"
        names = modalities[0] if len(modalities) == 1 else f"{', '.join(modalities[:-1])} and {modalities[-1]}"
        phrases.append(text.format(m=names, s=status, n=n))
    return phrases


def _unit(unit: str) -> str:
    return "log-odds" if unit == "log-odds" else "on the score"


def _pusher(row: pd.Series, scored: list[str], unit: str) -> str:
    """The scored branch (or the clip metadata) that pushed hardest towards the decision."""
    names = [*scored, OTHER]
    contrib = np.array([row[f"{n}_contrib"] for n in names], dtype=float)
    direction = -1.0 if row.get("decision") == "real" else 1.0
    if not np.isfinite(contrib).any() or np.nanmax(direction * contrib) <= 0:
        return "no scored part pushed it " + ("towards real" if direction < 0 else "towards fake")
    i = int(np.nanargmax(direction * contrib))
    label = "clip metadata" if names[i] == OTHER else names[i]
    return f"{label} pushed most ({contrib[i]:+.2f} {_unit(unit)})"
