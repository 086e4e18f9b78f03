"""The k-fold trainer behind ``mmdf train <branch>``: shared folds, one fold at a time, merged outputs.

Layout under ``runs/<experiment>/<branch>/``::

    config.yaml  folds.csv  oof.csv  val_pred.csv  test_pred.csv  metrics.json
    fold_<k>/best.pt last.pt summary.csv predictions.csv   tb/fold_<k>/ (TensorBoard)

A fold is finished once its ``predictions.csv`` exists; an interrupted fold
resumes from ``last.pt`` (see :mod:`mmdf.train.loop`). The folds come from the
run's ``folds.csv``, made once and shared by every branch and the stacker.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd

from mmdf.config import save_config, to_dict
from mmdf.data.folds import FOLD_COL, load_or_make_folds
from mmdf.errors import MmdfError
from mmdf.files import atomic_write
from mmdf.prepare.manifest import load_manifest
from mmdf.train import distributed
from mmdf.train.branches import get_branch
from mmdf.train.branches.base import Branch
from mmdf.train.loop import PRED_FILE, FoldJob
from mmdf.train.outputs import MERGED_FILES, write_outputs
from mmdf.train.runtime import Runtime, resolve_runtime

log = logging.getLogger(__name__)


def train_branch(cfg, branch: str | Branch, folds: list[int] | None = None, force: bool = False,
                 manifest: pd.DataFrame | None = None) -> Path:
    """Train ``branch`` k-fold; return ``cfg.run_dir / branch.name``.

    ``folds`` trains a subset (merged outputs are written once every fold is
    done); ``force`` retrains the requested folds from scratch; ``manifest``
    (the prepare manifest, see :mod:`mmdf.prepare.manifest`) defaults to the one of ``cfg``.
    """
    branch = get_branch(branch) if isinstance(branch, str) else branch
    out = cfg.run_dir / branch.name
    n = cfg.folds.n_splits
    wanted = sorted(set(folds)) if folds else list(range(n))
    bad = [k for k in wanted if not 0 <= k < n]
    if bad:
        raise MmdfError(f"--folds {bad} out of range: folds.n_splits={n} gives folds 0..{n - 1}")
    if not force and is_complete(out, n):
        log.info("%s branch already trained in %s; nothing to do (use --force to retrain)", branch.name, out)
        return out
    rt = resolve_runtime(cfg.train)
    try:
        _run(cfg, branch, wanted, force, manifest, out, rt)
    finally:
        distributed.teardown(rt.dist)
    return out


def is_complete(out: Path, n: int) -> bool:
    """Whether the branch folder holds every fold's predictions and the merged outputs."""
    return all((out / f).is_file() for f in MERGED_FILES) and all(
        (out / f"fold_{k}" / PRED_FILE).is_file() for k in range(n))


def _run(cfg, branch: Branch, wanted: list[int], force: bool, manifest: pd.DataFrame | None,
         out: Path, rt: Runtime) -> None:
    main = rt.dist.is_main
    manifest = with_folds(cfg, load_train_manifest(cfg, manifest), rt)
    ok = branch.usable(manifest)
    if main:
        _start_outputs(cfg, branch, manifest, ok, wanted, force, out)
    distributed.barrier(rt.dist)
    is_train = (manifest["split"] == "train").to_numpy()
    fold = manifest[FOLD_COL].to_numpy()
    for k in wanted:
        fold_dir = out / f"fold_{k}"
        if (fold_dir / PRED_FILE).is_file():
            if main:
                log.info("fold %d already trained; skipping", k)
            continue
        branch.train_fold(FoldJob(cfg, branch, k, fit=manifest[ok & is_train & (fold != k)],
                           held=manifest[ok & is_train & (fold == k)], others=manifest[ok & ~is_train],
                           fold_dir=fold_dir, rt=rt))
        distributed.barrier(rt.dist)
    todo = [k for k in range(cfg.folds.n_splits) if not (out / f"fold_{k}" / PRED_FILE).is_file()]
    if main and not todo:
        write_outputs(cfg, branch, manifest, out)
        branch.describe_run(cfg, manifest, out)
    elif main:
        log.info("folds %s not trained yet: oof.csv/val_pred.csv/test_pred.csv are written once they are", todo)
    distributed.barrier(rt.dist)


def load_train_manifest(cfg, manifest: pd.DataFrame | None) -> pd.DataFrame:
    """The manifest (loaded for ``cfg`` when not given), checked to hold train clips."""
    if manifest is None:
        manifest = load_manifest(cfg)
    manifest = manifest.reset_index(drop=True)
    missing = [c for c in ("split", "video_name", "target") if c not in manifest]
    if missing:
        raise MmdfError(f"the manifest lacks column(s) {', '.join(missing)}; re-run `mmdf prepare`")
    if not (manifest["split"] == "train").any():
        raise MmdfError("the manifest has no train clips; check data.train_labels and run `mmdf prepare`")
    return manifest


def with_folds(cfg, manifest: pd.DataFrame, rt: Runtime) -> pd.DataFrame:
    """The manifest with a fold column (train clips), from the run's ``folds.csv`` (made once, by rank 0)."""
    train_rows = manifest.loc[manifest["split"] == "train", ["video_name", "target"]]
    folds_path = cfg.run_dir / "folds.csv"
    if rt.dist.is_main:
        load_or_make_folds(folds_path, train_rows, cfg.folds)
    distributed.barrier(rt.dist)
    fold_of = load_or_make_folds(folds_path, train_rows, cfg.folds).set_index("video_name")[FOLD_COL]
    manifest = manifest.copy()
    manifest[FOLD_COL] = manifest["video_name"].map(fold_of).where(manifest["split"] == "train")
    return manifest


def _start_outputs(cfg, branch: Branch, manifest: pd.DataFrame, ok, wanted: list[int], force: bool,
                   out: Path) -> None:
    """Config and folds of the branch folder; with ``force``, the requested folds cleared."""
    out.mkdir(parents=True, exist_ok=True)
    _warn_if_config_changed(cfg, out, force)
    save_config(cfg, out / "config.yaml")
    with atomic_write(out / "folds.csv") as tmp:  # the run's folds, beside the branch's OOF
        shutil.copyfile(cfg.run_dir / "folds.csv", tmp)
    if force:
        for k in wanted:
            shutil.rmtree(out / f"fold_{k}", ignore_errors=True)
            shutil.rmtree(out / "tb" / f"fold_{k}", ignore_errors=True)
        for f in MERGED_FILES:
            (out / f).unlink(missing_ok=True)
    n_skip = int((~ok).sum())
    if n_skip:
        counts = manifest.loc[~ok, branch.status_col].value_counts().to_dict()
        log.info("%s branch: %d clip(s) without a usable %s get NaN: %s", branch.name, n_skip, branch.name, counts)


def _warn_if_config_changed(cfg, out: Path, force: bool) -> None:
    """Finished folds are kept on rerun; say so when they were trained with other settings."""
    saved = out / "config.yaml"
    done = sorted(out.glob(f"fold_*/{PRED_FILE}"))
    if force or not saved.is_file() or not done:
        return
    import yaml

    old, new = yaml.safe_load(saved.read_text()), to_dict(cfg)
    for section in (old, new):
        section.get("train", {}).pop("progress", None)
    if old != new:
        log.warning("the config differs from the one %d finished fold(s) in %s were trained with; "
                    "they are kept (use --force to retrain them)", len(done), out)
