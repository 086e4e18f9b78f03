"""`run_stack`: the stacking step of a run, from branch predictions to submission and report.

Outputs (under ``<run_dir>``)::

    stack/config.yaml       resolved config
    stack/features.csv      stacking features of every clip (split column)
    stack/oof.csv           stacked OOF of every method (video_name, fold, target, <method>...)
    stack/val_pred.csv      chosen method on val: video_name, target, prob
    stack/val_all.csv       every method on val
    stack/test_pred.csv     chosen method on test: video_name, prob, n_branches_scored
    stack/metrics.json      the table, the chosen method, counts, the inputs' fingerprint
    stack/stacker.json      the fitted chosen method and fallback as plain data (for `mmdf predict`)
    stack/lightgbm_fold<k>.txt  the LightGBM stacker of each fold, in LightGBM's model text
    stack/roc.png, stack/hist.png
    submission.csv          video_name,<stack.pred_column>
    report.md

A finished stack is redone when the branch outputs it was fitted on change
(a branch retrained after stacking), not only with ``--force``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mmdf.config import save_config, to_dict
from mmdf.data.folds import FOLD_COL, describe_folds
from mmdf.data.kinds import load_kinds
from mmdf.data.labels import NAME_COL, TARGET_COL, read_labels
from mmdf.errors import MmdfError
from mmdf.files import atomic_write, json_safe
from mmdf.prepare.manifest import load_manifest
from mmdf.stack.baselines import make_methods, with_fallback
from mmdf.stack.audit_link import link_from_report
from mmdf.stack.calibration import calibrate_and_report
from mmdf.stack.ensemble import FoldEnsemble
from mmdf.stack.evaluate import TPR_KEY, choose_method, cross_val_fit, fold_aucs, score_table
from mmdf.stack.features import build_features
from mmdf.stack.inputs import (BranchOutputs, SPLIT_FILES, check_covers, load_branches, resolve_folds, split_names,
    split_targets)
from mmdf.stack.model_card import write_model_card
from mmdf.stack.report import kind_table, plot_histograms, plot_roc, write_report
from mmdf.stack.saved import save_stacker
from mmdf.stack.shortcuts import shortcut_check
from mmdf.stack.submission import build_submission, write_submission

log = logging.getLogger(__name__)

SUBMISSION_NAME = "submission.csv"
REPORT_NAME = "report.md"
FALLBACK = "lightgbm"  # scores the clips that no branch could


@dataclass
class StackData:
    """Everything the methods are fitted and scored on, checked against the branches' folds."""

    branches: list[BranchOutputs]
    folds: pd.DataFrame  # video_name, target, fold of every train clip
    X: dict[str, pd.DataFrame]  # split -> features (train always; val/test where the run has them)
    y_val: np.ndarray | None
    test_names: list[str] | None
    manifest: pd.DataFrame | None
    use_metadata: bool

    @property
    def y_train(self) -> np.ndarray:
        return self.folds[TARGET_COL].to_numpy(dtype=int)

    @property
    def fold(self) -> np.ndarray:
        return self.folds[FOLD_COL].to_numpy(dtype=int)


def test_list_names(cfg, manifest: pd.DataFrame | None = None) -> list[str] | None:
    """Names of the test list in its order; ``None`` where the config names no test list.

    The list file itself when it exists, else the manifest's test rows (the
    manifest is made from the same list, in its order).
    """
    path, _ = cfg.data.split_paths("test")
    if path is None:
        return None
    if Path(path).is_file():
        return read_labels(path, require_target=False)[NAME_COL].tolist()
    if manifest is not None and (manifest["split"] == "test").any():
        log.info("test list %s not found; using the manifest's test clips", path)
        return manifest.loc[manifest["split"] == "test", NAME_COL].tolist()
    raise MmdfError(f"test list not found: {path} (data.test_list); set data.test_list=null to skip the submission")


def _load_manifest(cfg, required: bool) -> pd.DataFrame | None:
    try:
        return load_manifest(cfg)
    except (MmdfError, ImportError) as exc:
        if required:
            if isinstance(exc, ImportError):
                raise MmdfError(f"cannot read the preprocessing manifest ({exc}); "
                                "set stack.use_metadata=false to stack without it") from None
            raise
        log.warning("no manifest (%s); the report will not count clips by status", exc)
        return None


def inputs_fingerprint(cfg, branches: list[BranchOutputs]) -> str:
    """Hash of the stack settings and of every branch output file the stack reads."""
    h = hashlib.sha1(json.dumps({k: to_dict(cfg)[k] for k in ("seed", "data", "folds", "stack")},
                                sort_keys=True, default=str).encode())
    for b in branches:
        for name in (*SPLIT_FILES.values(), "folds.csv"):
            path = b.dir / name
            h.update(f"{b.name}/{name}:".encode())
            h.update(path.read_bytes() if path.is_file() else b"-")
    return h.hexdigest()[:16]


def run_stack(cfg, manifest: pd.DataFrame | None = None, force: bool = False) -> Path:
    """Stack the branches of ``cfg``'s run; returns ``<run_dir>/stack``.

    ``manifest``: the preprocessing manifest (see :mod:`mmdf.prepare.manifest`); ``None`` loads it.
    A finished stack whose inputs are unchanged is left as it is unless ``force``.
    """
    stack_dir = cfg.run_dir / "stack"
    branches = load_branches(cfg)
    fingerprint = inputs_fingerprint(cfg, branches)
    if not force and _finished_with(stack_dir, fingerprint):
        log.info("%s is already stacked on these branch outputs; use --force to redo it", cfg.run_dir)
        return stack_dir
    data = gather(cfg, branches, manifest)
    methods = make_methods([b.name for b in branches], cfg.stack, cfg.seed)
    if cfg.stack.method != "auto" and cfg.stack.method not in methods:
        raise MmdfError(f"stack.method={cfg.stack.method!r} is not one of: auto, {', '.join(methods)}")
    shortcuts = shortcut_check(data.manifest, data.folds[NAME_COL].tolist(), data.y_train, data.fold, cfg.seed) \
        if data.manifest is not None else None
    oof, fitted, preds = fit_methods(methods, data.X, data.y_train, data.fold)
    table = score_table(oof, data.y_train, preds.get("val", {}), data.y_val, cfg.seed)
    chosen, selection = _choose(cfg, table, fold_aucs(oof, data.y_train, data.fold))
    stack_dir.mkdir(parents=True, exist_ok=True)
    (stack_dir / "metrics.json").unlink(missing_ok=True)  # a stack redone halfway is not finished
    save_config(cfg, stack_dir / "config.yaml")
    _write_tables(stack_dir, data, oof, preds, chosen)
    rel_dirs = {b.name: os.path.relpath(b.dir, cfg.run_dir) for b in branches}
    save_stacker(stack_dir, method=chosen, estimator=fitted[chosen], fallback=fitted[FALLBACK],
                 features=list(data.X["train"].columns), branches=rel_dirs, use_metadata=data.use_metadata)
    for k, member in enumerate(fitted[FALLBACK].members):
        member.booster_.save_model(str(stack_dir / f"lightgbm_fold{k}.txt"))
    submission, note = _submission(cfg, data, preds, chosen)
    metrics = _metrics(cfg, data, table, chosen, selection, fitted, rel_dirs, submission, fingerprint)
    metrics["shortcuts"] = shortcuts
    _report(cfg, stack_dir, data, table, oof, preds, chosen, selection, fitted, submission, note, shortcuts)
    # --- for `mmdf predict`: calibration, thresholds, reliability diagram, model card (mmdf/stack/calibration.py,
    # mmdf/stack/model_card.py; owned with mmdf/predict/)
    write_model_card(cfg, data, table, chosen,
                     calibrate_and_report(cfg, stack_dir, data, chosen, oof, fitted[chosen],
                                          cfg.run_dir / REPORT_NAME))
    # --- end of the `mmdf predict` block
    link_from_report(cfg.run_dir)  # the report was rewritten: keep the link to an earlier audit
    with atomic_write(stack_dir / "metrics.json") as tmp:  # last: its presence marks a finished stack
        tmp.write_text(json.dumps(metrics, indent=2))
    _log_table(table, chosen)
    return stack_dir


def _finished_with(stack_dir: Path, fingerprint: str) -> bool:
    path = stack_dir / "metrics.json"
    if not path.is_file():
        return False
    try:
        old = json.loads(path.read_text()).get("inputs_fingerprint")
    except (OSError, json.JSONDecodeError):
        return False
    if old != fingerprint:
        log.info("the branch outputs or stack settings changed since %s was stacked; stacking again", stack_dir)
    return old == fingerprint


def gather(cfg, branches: list[BranchOutputs], manifest: pd.DataFrame | None) -> StackData:
    """Folds, split names and targets, and the feature frame of every split the run has."""
    folds = resolve_folds(branches, cfg.run_dir / "folds.csv")
    if manifest is None:
        manifest = _load_manifest(cfg, required=cfg.stack.use_metadata)
    meta = manifest if cfg.stack.use_metadata else None
    val_names = split_names(branches, "val")
    y_val = split_targets(branches, "val", val_names) if val_names else None
    test_names = test_list_names(cfg, manifest)
    if test_names is not None:
        for b in branches:
            if b.preds["test"] is None:
                raise MmdfError(f"{b.file('test')} not found, but data.test_list is set; "
                                f"re-run `mmdf train {b.name}` to predict the test clips")
            check_covers(b.preds["test"], test_names, str(b.file("test")), "the test list")
    else:
        log.info("data.test_list is not set: no submission will be written")
    X = {"train": build_features(branches, "train", folds[NAME_COL].tolist(), meta)}
    for split, names in (("val", val_names), ("test", test_names)):
        if names:  # an empty split (a dataset of train clips only) has nothing to score
            X[split] = build_features(branches, split, names, meta)
    return StackData(branches, folds, X, y_val, test_names, manifest, meta is not None)


def fit_methods(methods: dict, X: dict[str, pd.DataFrame], y_train: np.ndarray, fold: np.ndarray):
    """Stacked OOF of every method on the branches' folds, and its fold models averaged.

    Returns ``(oof, fitted, preds)``: ``{method: OOF probs}``, ``{method:
    FoldEnsemble}`` (see :mod:`mmdf.stack.ensemble` for why not a refit),
    ``{split: {method: probs}}`` for the other splits of ``X``. Clips no branch
    scored take the metadata-aware LightGBM's score whatever the method.
    """
    oof, fitted = {}, {}
    for name, est in methods.items():
        log.info("stacking: cross-validating %s on %d folds", name, len(np.unique(fold)))
        oof[name], members = cross_val_fit(est, X["train"], y_train, fold)
        fitted[name] = FoldEnsemble(members)
    preds = {split: {n: m.predict_proba(X[split])[:, 1] for n, m in fitted.items()}
             for split in X if split != "train"}
    for split, by_method in [("train", oof), *preds.items()]:
        n_scored = X[split]["n_branches_scored"].to_numpy()
        for name in by_method:
            by_method[name] = with_fallback(by_method[name], by_method[FALLBACK], n_scored)
    return oof, fitted, preds


def _choose(cfg, table: pd.DataFrame, folds: dict[str, list[float]]) -> tuple[str, str]:
    if cfg.stack.method == "auto":
        chosen, selection = choose_method(table, folds)
    else:
        chosen, selection = cfg.stack.method, "set by stack.method"
    log.info("stacking: %s chosen (%s)", chosen, selection)
    return chosen, selection


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_write(path) as tmp:
        frame.to_csv(tmp, index=False)


def _write_tables(stack_dir: Path, data: StackData, oof: dict, preds: dict, chosen: str) -> None:
    feats = pd.concat([x.assign(split=s) for s, x in data.X.items()]).reset_index()
    _write_csv(feats, stack_dir / "features.csv")
    oof_df = data.folds[[NAME_COL, FOLD_COL, TARGET_COL]].copy()
    for name, p in oof.items():
        oof_df[name] = p
    _write_csv(oof_df, stack_dir / "oof.csv")
    if "val" in data.X:
        names = data.X["val"].index.tolist()
        target = pd.array(data.y_val if data.y_val is not None else [pd.NA] * len(names), dtype="Int8")
        _write_csv(pd.DataFrame({NAME_COL: names, TARGET_COL: target, "prob": preds["val"][chosen]}),
                   stack_dir / "val_pred.csv")
        _write_csv(pd.DataFrame({NAME_COL: names, TARGET_COL: target, **preds["val"]}), stack_dir / "val_all.csv")
    if "test" in data.X:
        _write_csv(pd.DataFrame({
            NAME_COL: data.test_names, "prob": preds["test"][chosen],
            "n_branches_scored": data.X["test"]["n_branches_scored"].to_numpy().astype(int),
        }), stack_dir / "test_pred.csv")


def _unscored(data: StackData) -> dict[str, int]:
    return {split: int((x["n_branches_scored"] == 0).sum()) for split, x in data.X.items()}


def _submission(cfg, data: StackData, preds: dict, chosen: str) -> tuple[Path | None, str]:
    """The submission (every test clip, in the list's order) and the report's sentence about it."""
    if data.test_names is None:
        return None, "not written: data.test_list is not set"
    sub = build_submission(data.test_names, preds["test"][chosen] if "test" in preds else [],
                           cfg.stack.pred_column)
    path = write_submission(sub, cfg.run_dir / SUBMISSION_NAME, data.test_names, cfg.stack.pred_column)
    n_unscored = _unscored(data).get("test", 0)
    if n_unscored:
        log.warning("submission: %d test clip(s) scored by no branch got the LightGBM stacker's score "
                    "from metadata alone", n_unscored)
    return path, (f"`{SUBMISSION_NAME}`, {len(data.test_names)} clips, column `{cfg.stack.pred_column}`, "
                  f"method `{chosen}`; {n_unscored} clip(s) scored by no branch got the "
                  "LightGBM stacker's score from metadata")


def _metrics(cfg, data: StackData, table, chosen, selection, fitted, rel_dirs, submission, fingerprint) -> dict:
    return {
        "chosen": chosen,
        "selection": selection,
        "methods": json_safe(table.to_dict(orient="records")),
        "folds": describe_folds(cfg.folds),
        "shifted": table.loc[table["shifted"].fillna(False).astype(bool), "method"].tolist()
        if "shifted" in table else [],
        "n_train": len(data.folds),
        "n_folds": int(len(np.unique(data.fold))),
        "n_val": len(data.X["val"]) if "val" in data.X else 0,
        "n_test": len(data.test_names) if data.test_names is not None else 0,
        "unscored_by_any_branch": _unscored(data),
        "lightgbm_best_iteration": [int(m.best_iteration_) for m in fitted[FALLBACK].members],
        "features": list(data.X["train"].columns),
        "branches": rel_dirs,
        "submission": SUBMISSION_NAME if submission else None,
        "inputs_fingerprint": fingerprint,
    }


def _report(cfg, stack_dir: Path, data: StackData, table, oof, preds, chosen, selection, fitted,
            submission, note, shortcuts) -> None:
    images = _plots(stack_dir, data.y_train, oof, data.y_val, preds.get("val"), chosen)
    status_counts = None
    if data.manifest is not None and "status" in data.manifest:
        status_counts = pd.crosstab(data.manifest["status"], data.manifest["split"]).rename_axis(
            index="status", columns=None)
    configs = {"stack (resolved)": (stack_dir / "config.yaml").read_text()}
    for b in data.branches:  # figures a branch drew of its own run (e.g. its features by kind of fake)
        for figure in sorted(b.dir.glob("*_by_kind.png")):
            images[f"{b.name}: {figure.stem.replace('_', ' ')}"] = figure
    for b in data.branches:
        if (b.dir / "config.yaml").is_file():
            configs[f"branch {b.name} ({b.dir / 'config.yaml'})"] = (b.dir / "config.yaml").read_text()
    write_report(
        cfg.run_dir / REPORT_NAME, experiment=cfg.experiment, table=table, chosen=chosen, selection=selection,
        status_counts=status_counts, unscored=_unscored(data), images=images, submission=submission,
        submission_note=note, importance=fitted[FALLBACK].feature_importance(), configs=configs,
        shortcuts=shortcuts, kinds=_kind_table(cfg, data, oof, preds, chosen), folds_note=describe_folds(cfg.folds),
    )


def _kind_table(cfg, data: StackData, oof: dict, preds: dict, chosen: str) -> pd.DataFrame | None:
    """The report's AUC per kind of fake, where the data root names kinds (:mod:`mmdf.data.kinds`)."""
    kinds = load_kinds(cfg.data)
    if kinds is None:
        return None
    train = data.folds[[NAME_COL, TARGET_COL]].assign(**oof)
    val = None
    if "val" in preds and data.y_val is not None:
        val = pd.DataFrame({NAME_COL: data.X["val"].index, TARGET_COL: data.y_val, **preds["val"]})
    return kind_table(train, val, kinds, chosen)


def _plots(stack_dir: Path, y_train, oof, y_val, val, chosen) -> dict[str, Path]:
    images = {}
    roc_panels = {"train, stacked OOF": (y_train, oof)}
    hist_panels = {"train, stacked OOF": (y_train, oof[chosen])}
    if val is not None and y_val is not None:
        roc_panels["val"] = (y_val, val)
        hist_panels["val"] = (y_val, val[chosen])
    images["ROC curves (log FPR)"] = plot_roc(roc_panels, stack_dir / "roc.png")
    images[f"Score histograms ({chosen})"] = plot_histograms(hist_panels, stack_dir / "hist.png", chosen)
    return images



def _log_table(table: pd.DataFrame, chosen: str) -> None:
    for _, r in table.iterrows():
        val = "-" if math.isnan(r["val_auc"]) else f"{r['val_auc']:.4f}"
        log.info("%-14s stacked-OOF AUC %.4f TPR@1e-3 %.4f | val AUC %s%s", r["method"], r["oof_auc"],
                 r[f"oof_{TPR_KEY}"], val, "  <- chosen" if r["method"] == chosen else "")
