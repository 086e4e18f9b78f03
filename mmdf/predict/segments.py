"""Segment scores as data: each branch's scores of parts of a clip in time, their thresholds, their AUC.

``segments.csv`` holds one row per scored part: ``video_name, modality,
start_s, end_s, score`` (the part's probability; the modality a branch
localises, :attr:`mmdf.train.branches.base.Branch.modality`). A part is
marked where its score passes its branch's *part threshold*: the probability
the branch's clip scores needed on the run's out-of-fold predictions for a
false-positive rate at most the chosen one (the highest real OOF score at
FPR 1e-3 with a few hundred real clips), a clip-level bar applied to parts.
Where labels of manipulated spans exist (``video_name, modality, start_s,
end_s, fake``; the demo writes ``segment_labels.csv``), each part is labelled
fake where it overlaps a fake span of its modality, and :func:`segment_auc`
gives a segment-level ROC AUC per modality.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mmdf.errors import MmdfError
from mmdf.metrics import roc_auc

SEGMENT_COLUMNS = ["video_name", "modality", "start_s", "end_s", "score"]
SEGMENT_LABELS = "segment_labels.csv"  # in a data root, where one says where its clips are manipulated


def segment_rows(video_name: str, segments: dict, modality_of: dict[str, str]) -> pd.DataFrame:
    """The rows of one clip's ``{branch: Segments}``."""
    parts = [pd.DataFrame({"video_name": video_name, "modality": modality_of[b], "start_s": s.start_s,
                           "end_s": s.end_s, "score": s.score}) for b, s in segments.items()]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SEGMENT_COLUMNS)


def part_thresholds(run_dir: str | Path, branch_dirs: dict[str, str], fpr: float) -> dict[str, float]:
    """Per branch, the probability its OOF clip scores needed for FPR <= ``fpr`` (NaN without real OOF scores)."""
    out = {}
    for b, rel in branch_dirs.items():
        oof = pd.read_csv(Path(run_dir) / rel / "oof.csv")
        real = oof.loc[oof["target"] == 0, "prob"].dropna().to_numpy(dtype=float)
        out[b] = float(np.quantile(real, 1 - fpr, method="higher")) if len(real) else float("nan")
    return out


def read_segment_labels(path: str | Path) -> pd.DataFrame:
    """A label table (see the module docstring); an error names what is missing."""
    labels = pd.read_csv(path, dtype={"video_name": str})
    missing = [c for c in ("video_name", "modality", "start_s", "end_s", "fake") if c not in labels]
    if missing:
        raise MmdfError(f"{path}: segment labels lack column(s) {', '.join(missing)} "
                        "(expected video_name, modality, start_s, end_s, fake)")
    return labels


def label_segments(segments: pd.DataFrame, labels: pd.DataFrame) -> pd.Series:
    """1 where a part overlaps a fake span of its clip and modality, 0 where its clip has spans of that
    modality and none fake there, NaN where the labels say nothing about that clip and modality."""
    out = pd.Series(np.nan, index=segments.index)
    spans = {k: g for k, g in labels.groupby(["video_name", "modality"])}
    for i, row in segments.iterrows():
        mine = spans.get((row["video_name"], row["modality"]))
        if mine is None:
            continue
        overlap = (mine["start_s"] < row["end_s"]) & (mine["end_s"] > row["start_s"])
        out[i] = float((overlap & (mine["fake"] == 1)).any())
    return out


def segment_auc(segments: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Per modality: parts labelled, fake parts, clips, and the ROC AUC of the part scores."""
    y = label_segments(segments, labels)
    rows = []
    for modality, part in segments.assign(fake=y).dropna(subset=["fake", "score"]).groupby("modality", sort=False):
        fake = part["fake"].to_numpy(dtype=int)
        auc = roc_auc(fake, part["score"].to_numpy()) if 0 < fake.sum() < len(fake) else float("nan")
        rows.append({"modality": modality, "segments": len(part), "fake_segments": int(fake.sum()),
                     "clips": part["video_name"].nunique(), "segment_auc": auc})
    return pd.DataFrame(rows, columns=["modality", "segments", "fake_segments", "clips", "segment_auc"])
