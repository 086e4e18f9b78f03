"""Scoring new clips with a finished run: prepare, score with each branch, stack.

The run's own resolved stack config decides the preprocessing (so new clips
get exactly the features the branches were trained on, in the same cache), its
``stack/stacker.json`` the combination; the branches are the run's own
(their folders are stored relative to the run folder, so a moved run works). Clips are handled in chunks of
``batch_size`` so that a long list never holds all its features at once. Every
input gets a row: a file that does not exist or cannot be decoded keeps its
status (``missing``, ``corrupt``, ...); a clip that some but not all branches
could score is still stacked (missing values are what the stacker expects);
only a ``missing`` file gets no probability.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from mmdf.errors import MmdfError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4",)
LIST_SUFFIXES = (".txt", ".csv", ".lst")
OUTPUT_COLUMNS = ["path", "video_name", "prob", "status", "error", "n_branches_scored"]


def collect_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Expand folders (their ``*.mp4``, sorted) and list files (one path per line) into clip paths.

    A list's relative paths are relative to the list's folder; a ``video_name``
    or ``path`` header line is skipped (so a challenge test list works as is).
    Paths that do not exist are kept: they come out with status ``missing``.
    """
    paths: list[Path] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                log.warning("%s holds no %s files", item, "/".join(VIDEO_SUFFIXES))
            paths += found
        elif item.suffix.lower() in LIST_SUFFIXES and item.is_file():
            paths += _list_entries(item)
        else:
            paths.append(item)
    if not paths:
        raise MmdfError("no clips to score: give .mp4 files, folders holding them, or a list file")
    return paths


def _list_entries(list_file: Path) -> list[Path]:
    """The paths of a list file (first column), relative ones taken relative to the list's folder."""
    entries = [line.split(",")[0].strip() for line in list_file.read_text(encoding="utf-8-sig").splitlines()]
    return [Path(e) if Path(e).is_absolute() else list_file.parent / e
            for e in entries if e and e not in ("video_name", "path")]


def load_run(run_dir: str | Path):
    """(config, stacker) of a finished run; refuses a run that has not been stacked."""
    from mmdf.config import load_config
    from mmdf.stack.saved import load_stacker

    run_dir = Path(run_dir)
    cfg_path = run_dir / "stack" / "config.yaml"
    if not cfg_path.is_file():
        raise MmdfError(f"{run_dir} is not a stacked run ({cfg_path} is absent); "
                        "run `mmdf stack --config ...` for it first")
    return load_config(cfg_path), load_stacker(run_dir / "stack")


def predict_clips(run_dir: str | Path, inputs: Iterable[str | Path], batch_size: int = 256,
                  workers: int | None = None) -> pd.DataFrame:
    """Score clips with a finished run: ``path, video_name, prob, status, error,
    n_branches_scored, <branch>_prob...`` in input order."""
    from mmdf.prepare.runner import prepare_clips
    from mmdf.stack.saved import predict_with_stacker
    from mmdf.train.branches import get_branch

    run_dir = Path(run_dir)
    cfg, stacker = load_run(run_dir)
    trained = {name: get_branch(name).trained(run_dir / rel) for name, rel in stacker["branches"].items()}
    paths = collect_inputs(inputs)
    if batch_size < 1:
        raise MmdfError(f"batch size must be at least 1, got {batch_size}")
    out = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        log.info("predict: clips %d-%d of %d", start + 1, start + len(chunk), len(paths))
        rows = prepare_clips(chunk, cfg, workers=workers).reset_index(drop=True)
        # names may repeat across folders: key rows by position while scoring
        keys = [f"{start + i:09d}" for i in range(len(rows))]
        branch_preds = {}
        for name, branch in trained.items():
            pred = branch.score(rows).reset_index(drop=True)
            if len(pred) != len(rows):
                raise RuntimeError(f"branch {name} returned {len(pred)} rows for {len(rows)} clips")
            branch_preds[name] = pred.assign(video_name=keys)
        keyed = rows.assign(video_name=keys, split="predict")
        stacked = predict_with_stacker(stacker, branch_preds, keyed, split="predict")
        part = pd.DataFrame({
            "path": [str(p) for p in chunk],
            "video_name": rows["video_name"].to_numpy(),
            "prob": stacked["prob"].to_numpy(),
            "status": rows["status"].to_numpy(),
            "error": rows["error"].to_numpy(),
            "n_branches_scored": stacked["n_branches_scored"].to_numpy(),
        })
        for name, pred in branch_preds.items():
            part[f"{name}_prob"] = pred["prob"].to_numpy()
        part.loc[part["status"] == "missing", "prob"] = np.nan
        out.append(part)
    return pd.concat(out, ignore_index=True)
