"""Kinds of fake per clip, where the dataset says them (the demo data and some user sets do).

A ``manifest.csv`` in the data root with columns ``split, video_name, kind``
(``real`` or a kind of fake such as ``fake_voice``) lets every report break
its scores down by kind: a branch is expected to see some kinds, not others.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

KINDS_FILE = "manifest.csv"


def load_kinds(data_cfg) -> dict[str, pd.Series] | None:
    """split -> Series video_name -> kind, or None where the data root has no kinds file."""
    path = Path(data_cfg.root) / KINDS_FILE
    if not path.is_file():
        return None
    kinds = pd.read_csv(path, dtype={"video_name": str})
    if not {"video_name", "kind", "split"} <= set(kinds.columns):
        return None
    return {split: part.set_index("video_name")["kind"] for split, part in kinds.groupby("split")}
