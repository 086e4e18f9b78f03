"""The branches' predictions, read and cross-checked before anything is fitted.

Stacking is only honest when every branch's out-of-fold predictions were made
with the same folds the stacker cross-validates on: a clip predicted by a
branch model that saw it would leak its label into the stacked estimate. So
the fold of every train clip must agree between each branch's ``oof.csv``, its
``folds.csv`` and the stacker's folds; any disagreement is refused, naming the
files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mmdf.data.folds import FOLD_COL, check_folds, clip_differences
from mmdf.data.labels import NAME_COL, TARGET_COL
from mmdf.errors import MmdfError, list_offenders
from mmdf.train.branches import all_branches

log = logging.getLogger(__name__)

PROB_COL = "prob"
STATUS_COL = "status"
SPLIT_FILES = {"train": "oof.csv", "val": "val_pred.csv", "test": "test_pred.csv"}
REQUIRED_COLUMNS = {
    "train": (NAME_COL, FOLD_COL, TARGET_COL, PROB_COL, STATUS_COL),
    "val": (NAME_COL, TARGET_COL, PROB_COL, STATUS_COL),
    "test": (NAME_COL, PROB_COL, STATUS_COL),
}


@dataclass
class BranchOutputs:
    """One branch's predictions per split (``None`` where the file is absent)."""

    name: str
    dir: Path
    preds: dict[str, pd.DataFrame | None]  # split -> video_name, [fold], [target], prob, status
    folds: pd.DataFrame | None  # the branch's folds.csv, if it wrote one

    def file(self, split: str) -> Path:
        return self.dir / SPLIT_FILES[split]


def branch_dirs(cfg) -> dict[str, Path]:
    """``stack.branches`` or, when empty, every registered branch this run has trained.

    Relative folders in ``stack.branches`` are relative to the run folder, so
    a moved run keeps stacking its own branches.
    """
    if cfg.stack.branches:
        return {name: cfg.run_dir / d for name, d in cfg.stack.branches.items()}

    found = {name: cfg.run_dir / name for name in all_branches() if (cfg.run_dir / name).is_dir()}
    if not found:
        raise MmdfError(f"no trained branch in {cfg.run_dir} (none of {', '.join(all_branches())}); "
                        "run `mmdf train <branch> --config ...` first, or name them in stack.branches")
    absent = [name for name in all_branches() if name not in found]
    if absent:
        log.warning("stacking %s: the run has no %s branch", ", ".join(found), ", ".join(absent))
    return found


def read_predictions(path: Path, split: str) -> pd.DataFrame:
    """Read one prediction CSV, checking columns, duplicates and probabilities (NaN allowed)."""
    try:
        df = pd.read_csv(path, dtype={NAME_COL: str, STATUS_COL: str}, keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise MmdfError(f"{path}: not a readable CSV ({exc})") from None
    missing = [c for c in REQUIRED_COLUMNS[split] if c not in df.columns]
    if missing:
        raise MmdfError(
            f"{path}: missing column(s) {', '.join(missing)}; expected "
            f"{', '.join(REQUIRED_COLUMNS[split])} (re-run `mmdf train` for this branch)"
        )
    if df[NAME_COL].duplicated().any():
        dup = df.loc[df[NAME_COL].duplicated(), NAME_COL].tolist()
        raise MmdfError(f"{path}: duplicated clips: {list_offenders(dup)}")
    prob = pd.to_numeric(df[PROB_COL], errors="coerce")
    bad = prob.notna() & ((prob < 0) | (prob > 1)) | (prob.isna() & df[PROB_COL].notna())
    if bad.any():
        raise MmdfError(
            f"{path}: {int(bad.sum())} prob value(s) are not numbers in [0, 1]: "
            f"{list_offenders(df.loc[bad, NAME_COL].tolist())}"
        )
    df[PROB_COL] = prob.astype(float)
    df[STATUS_COL] = df[STATUS_COL].fillna("").astype(str)
    if TARGET_COL in df:
        df[TARGET_COL] = pd.to_numeric(df[TARGET_COL], errors="coerce").astype("Int8")
    if FOLD_COL in df:
        df[FOLD_COL] = df[FOLD_COL].astype(int)
    return df


def load_branch(name: str, directory: str | Path) -> BranchOutputs:
    """A branch's oof (required), val and test predictions, and its folds.csv."""
    directory = Path(directory)
    oof = directory / SPLIT_FILES["train"]
    if not oof.is_file():
        raise MmdfError(
            f"branch '{name}': {oof} not found; run `mmdf train {name} --config ...` first "
            f"(or point stack.branches.{name} at a finished branch folder)"
        )
    preds = {
        split: read_predictions(directory / f, split) if (directory / f).is_file() else None
        for split, f in SPLIT_FILES.items()
    }
    oof_targets = preds["train"][TARGET_COL]
    if oof_targets.isna().any():
        raise MmdfError(f"{oof}: target missing for {list_offenders(preds['train'].loc[oof_targets.isna(), NAME_COL].tolist())}")
    folds_path = directory / "folds.csv"
    folds = pd.read_csv(folds_path, dtype={NAME_COL: str}) if folds_path.is_file() else None
    return BranchOutputs(name=name, dir=directory, preds=preds, folds=folds)


def load_branches(cfg) -> list[BranchOutputs]:
    branches = [load_branch(name, d) for name, d in branch_dirs(cfg).items()]
    if not branches:
        raise MmdfError("stack.branches is empty of branches; name at least one branch folder")
    return branches


# --------------------------------------------------------------------------- folds


def _fold_map(df: pd.DataFrame) -> pd.Series:
    return df.set_index(NAME_COL)[FOLD_COL].astype(int)


def compare_folds(a: pd.DataFrame, a_name: str, b: pd.DataFrame, b_name: str) -> None:
    """Refuse unless ``a`` and ``b`` hold the same clips in the same folds (and same targets)."""
    only_a, only_b, targets_differ = clip_differences(a, b)
    if only_a or only_b:
        raise MmdfError(
            f"{a_name} and {b_name} cover different train clips: {len(only_a)} only in the first "
            f"({list_offenders(only_a) if only_a else 'none'}), {len(only_b)} only in the second "
            f"({list_offenders(only_b) if only_b else 'none'}); both must come from the same train labels"
        )
    fa, fb = _fold_map(a), _fold_map(b)
    differ = fa != fb.reindex(fa.index)
    if differ.any():
        raise MmdfError(
            f"fold assignments differ between {a_name} and {b_name} for {int(differ.sum())} of "
            f"{len(fa)} train clips ({list_offenders(fa.index[differ].tolist())}); stacking them "
            "would leak labels into the out-of-fold estimate. Train every branch with the same "
            "folds.csv (same runs_dir/experiment or a copied folds.csv) and stack again"
        )
    if targets_differ:
        raise MmdfError(f"targets differ between {a_name} and {b_name}: {list_offenders(targets_differ)}")


def resolve_folds(branches: list[BranchOutputs], stack_folds_path: Path) -> pd.DataFrame:
    """The stacker's folds (``video_name, target, fold``), checked against every branch.

    They are ``stack_folds_path`` (the run's folds.csv) when it exists, otherwise
    the first branch's folds.csv (or its oof fold column); every branch's oof.csv
    and folds.csv must then agree with them clip for clip.
    """
    if stack_folds_path.is_file():
        folds = pd.read_csv(stack_folds_path, dtype={NAME_COL: str})
        source = str(stack_folds_path)
    else:
        first = branches[0]
        if first.folds is not None:
            folds, source = first.folds, str(first.dir / "folds.csv")
        else:
            folds = first.preds["train"][[NAME_COL, TARGET_COL, FOLD_COL]]
            source = str(first.file("train"))
        log.info("no %s; the stacker uses the folds of %s", stack_folds_path, source)
    for col in (NAME_COL, TARGET_COL, FOLD_COL):
        if col not in folds:
            raise MmdfError(f"{source}: missing column '{col}'; expected video_name,target,fold")
    try:
        check_folds(folds)
    except MmdfError as exc:
        raise MmdfError(f"{source}: {exc}") from None
    for b in branches:
        compare_folds(folds, source, b.preds["train"], str(b.file("train")))
        if b.folds is not None:
            compare_folds(folds, source, b.folds, str(b.dir / "folds.csv"))
    return folds[[NAME_COL, TARGET_COL, FOLD_COL]].reset_index(drop=True).astype({TARGET_COL: int, FOLD_COL: int})


# --------------------------------------------------------------------------- per split


def split_names(branches: list[BranchOutputs], split: str) -> list[str] | None:
    """The clips of ``split`` (order of the first branch), checking all branches cover the same.

    ``None`` when no branch wrote the split; an error when only some did.
    """
    have = [b for b in branches if b.preds[split] is not None]
    if not have:
        return None
    if len(have) != len(branches):
        absent = [str(b.file(split)) for b in branches if b.preds[split] is None]
        raise MmdfError(
            f"{', '.join(absent)} not found while {have[0].file(split)} exists; "
            f"re-run training of the branch(es) so that all have {SPLIT_FILES[split]}"
        )
    names = have[0].preds[split][NAME_COL].tolist()
    for b in have[1:]:
        check_covers(b.preds[split], names, str(b.file(split)), str(have[0].file(split)))
    return names


def check_covers(preds: pd.DataFrame, names: list[str], path: str, reference: str) -> None:
    """``preds`` must hold exactly ``names``: one row per clip, none missing, none extra."""
    got = set(preds[NAME_COL])
    want = set(names)
    if got != want:
        lack = sorted(want - got)
        extra = sorted(got - want)
        raise MmdfError(
            f"{path} does not match {reference}: {len(lack)} clip(s) missing "
            f"({list_offenders(lack) if lack else 'none'}), {len(extra)} extra "
            f"({list_offenders(extra) if extra else 'none'}); the branch outputs are from "
            "different data; re-run the stale branch"
        )


def split_targets(branches: list[BranchOutputs], split: str, names: list[str]) -> np.ndarray | None:
    """Targets of ``split`` (NaN-free int array) if the branches know them, checked to agree."""
    targets = None
    for b in branches:
        df = b.preds[split]
        if TARGET_COL not in df or df[TARGET_COL].isna().all():
            continue
        t = df.set_index(NAME_COL)[TARGET_COL].reindex(names)
        if t.isna().any():
            raise MmdfError(f"{b.file(split)}: target missing for {list_offenders(t.index[t.isna()].tolist())}")
        t = t.astype(int).to_numpy()
        if targets is not None and (t != targets).any():
            raise MmdfError(f"targets of {split} differ between the branches' {SPLIT_FILES[split]} files")
        targets = t
    return targets
