"""Deterministic k-fold assignment of the train clips, written once and reused.

Both branches and the stacker read the same ``folds.csv`` so that their
out-of-fold predictions line up; the stacker refuses predictions made with
other folds (that would leak labels into its estimate).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from mmdf.data.config import FoldConfig
from mmdf.data.labels import NAME_COL, TARGET_COL
from mmdf.errors import MmdfError, list_offenders
from mmdf.files import atomic_write

FOLD_COL = "fold"


def make_folds(train: pd.DataFrame, cfg: FoldConfig) -> pd.DataFrame:
    """Assign a fold to every train clip: ``video_name, target, fold`` in input order.

    StratifiedKFold (shuffled with ``cfg.seed``); StratifiedGroupKFold when a
    groups file is configured, so that one group (e.g. identity) stays in one fold.
    """
    y = train[TARGET_COL].to_numpy().astype(int)
    if np.bincount(y, minlength=2).min() < cfg.n_splits:
        raise MmdfError(
            f"cannot make {cfg.n_splits} stratified folds: the train labels have "
            f"{int((y == 0).sum())} real and {int((y == 1).sum())} fake clips; "
            "lower folds.n_splits"
        )
    fold = np.full(len(train), -1, dtype=int)
    if cfg.groups_file:
        groups = _read_groups(train, cfg)
        splitter = StratifiedGroupKFold(cfg.n_splits, shuffle=True, random_state=cfg.seed)
        splits = splitter.split(np.zeros(len(y)), y, groups)
    else:
        splitter = StratifiedKFold(cfg.n_splits, shuffle=True, random_state=cfg.seed)
        splits = splitter.split(np.zeros(len(y)), y)
    for k, (_, held_out) in enumerate(splits):
        fold[held_out] = k
    out = pd.DataFrame({NAME_COL: train[NAME_COL].to_numpy(), TARGET_COL: y, FOLD_COL: fold})
    check_folds(out, cfg.n_splits)
    return out


def describe_folds(cfg: FoldConfig) -> str:
    """What the folds hold out, in words: the report says it beside every OOF figure."""
    if cfg.groups_file:
        return (f"{cfg.n_splits} stratified folds grouped by `{cfg.group_column}` of `{cfg.groups_file}` "
                f"(seed {cfg.seed}): no group spans two folds, so OOF scores clips of groups a model never saw")
    return (f"{cfg.n_splits} stratified folds (seed {cfg.seed}), not grouped: the same speakers, identities and "
            "generators fall on both sides of every fold, so OOF measures in-distribution skill only; give "
            "`folds.groups_file` (columns video_name, group) to hold them out")


def _read_groups(train: pd.DataFrame, cfg: FoldConfig) -> np.ndarray:
    path = Path(cfg.groups_file)
    if not path.is_file():
        raise MmdfError(f"folds.groups_file not found: {path}")
    groups = pd.read_csv(path, dtype=str)
    if NAME_COL not in groups or cfg.group_column not in groups:
        raise MmdfError(
            f"{path} must have columns '{NAME_COL}' and '{cfg.group_column}' (folds.group_column); "
            f"it has {', '.join(groups.columns)}"
        )
    mapping = groups.drop_duplicates(NAME_COL).set_index(NAME_COL)[cfg.group_column]
    g = train[NAME_COL].map(mapping)
    if g.isna().any():
        raise MmdfError(
            f"{path}: no group for {int(g.isna().sum())} train clip(s): "
            f"{list_offenders(train.loc[g.isna(), NAME_COL].tolist())}"
        )
    return g.to_numpy()


def check_folds(folds: pd.DataFrame, n_splits: int | None = None) -> None:
    """Every clip out-of-fold exactly once, folds numbered 0..k-1 and all present."""
    if folds[NAME_COL].duplicated().any():
        dup = folds.loc[folds[NAME_COL].duplicated(), NAME_COL].tolist()
        raise MmdfError(f"folds have leaks: clips in more than one fold: {list_offenders(dup)}")
    present = sorted(folds[FOLD_COL].unique().tolist())
    k = n_splits if n_splits is not None else len(present)
    if present != list(range(k)):
        raise MmdfError(f"folds must be numbered 0..{k - 1} with none empty; found {present}")


def load_or_make_folds(path: str | Path, train: pd.DataFrame, cfg: FoldConfig) -> pd.DataFrame:
    """Read ``path`` if it exists (checking it matches the train labels), else make and write it."""
    path = Path(path)
    if not path.exists():
        folds = make_folds(train, cfg)
        with atomic_write(path) as tmp:
            folds.to_csv(tmp, index=False)
        return folds
    folds = pd.read_csv(path, dtype={NAME_COL: str})
    check_folds(folds)
    assert_same_clips(folds, train, str(path))
    if folds[FOLD_COL].nunique() != cfg.n_splits:
        raise MmdfError(
            f"{path} has {folds[FOLD_COL].nunique()} folds but folds.n_splits={cfg.n_splits}; "
            "delete it to re-split, or set folds.n_splits to match"
        )
    return folds


def clip_differences(a: pd.DataFrame, b: pd.DataFrame) -> tuple[list[str], list[str], list[str]]:
    """Clips only in ``a``, clips only in ``b``, and shared clips whose targets differ.

    The one check behind every "same clips, same labels" guard; each caller
    words its own advice. Targets are compared only where both frames have them.
    """
    names_a, names_b = set(a[NAME_COL]), set(b[NAME_COL])
    differ: list[str] = []
    if TARGET_COL in a and TARGET_COL in b:
        ta = a.set_index(NAME_COL)[TARGET_COL].astype(int)
        tb = b.set_index(NAME_COL)[TARGET_COL].astype(int).reindex(ta.index)
        differ = ta.index[tb.notna() & (ta != tb)].tolist()
    return sorted(names_a - names_b), sorted(names_b - names_a), differ


def assert_same_clips(folds: pd.DataFrame, train: pd.DataFrame, where: str) -> None:
    """The folds file must cover exactly the train clips, with the same targets."""
    unknown, without_fold, differ = clip_differences(folds, train)
    if unknown or without_fold:
        raise MmdfError(
            f"{where} does not match the train labels: {len(without_fold)} clip(s) without a fold "
            f"({list_offenders(without_fold)}), {len(unknown)} unknown; delete it to re-split"
        )
    if differ:
        raise MmdfError(
            f"{where}: targets differ from the train labels for {len(differ)} clip(s): "
            f"{list_offenders(differ)}; delete it to re-split"
        )
