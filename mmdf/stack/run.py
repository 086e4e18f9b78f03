"""`run_stack`: the stacking step of a run, from branch predictions to submission and report.

Outputs (under ``<run_dir>``)::

    stack/config.yaml       resolved config
    stack/features.csv      stacking features of every clip (split column)
    stack/oof.csv           stacked OOF of every method (video_name, fold, target, <method>...)
    stack/val_pred.csv      chosen method on val: video_name, target, prob
    stack/val_all.csv       every method on val
    stack/test_pred.csv     chosen method on test: video_name, prob, n_branches_scored
    stack/metrics.json      the table, the chosen method, counts
    stack/stacker.pkl/.json the fitted chosen method (for `mmdf predict`)
    stack/lightgbm.txt      the LightGBM model fitted on all train OOF
    stack/roc.png, stack/hist.png
    submission.csv          video_name,<stack.pred_column>
    report.md
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone

from mmdf.config import save_config
from mmdf.data.folds import FOLD_COL
from mmdf.data.labels import NAME_COL, TARGET_COL, read_labels
from mmdf.errors import MmdfError
from mmdf.stack.baselines import make_methods, with_fallback
from mmdf.stack.evaluate import TPR_KEY, choose_method, cross_val_oof, score_table
from mmdf.stack.features import build_features
from mmdf.stack.inputs import check_covers, load_branches, resolve_folds, split_names, split_targets
from mmdf.stack.report import plot_histograms, plot_roc, write_report
from mmdf.stack.saved import save_stacker
from mmdf.stack.submission import build_submission, write_submission

log = logging.getLogger(__name__)

SUBMISSION_NAME = "submission.csv"
REPORT_NAME = "report.md"
FALLBACK = "lightgbm"  # scores the clips that no branch could


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
        from mmdf.prepare.manifest import load_manifest

        return load_manifest(cfg)
    except (MmdfError, ImportError) as exc:
        if required:
            if isinstance(exc, ImportError):
                raise MmdfError(f"cannot read the preprocessing manifest ({exc}); "
                                "set stack.use_metadata=false to stack without it") from None
            raise
        log.warning("no manifest (%s); the report will not count clips by status", exc)
        return None


def run_stack(cfg, manifest: pd.DataFrame | None = None, force: bool = False) -> Path:
    """Stack the branches of ``cfg``'s run; returns ``<run_dir>/stack``.

    ``manifest``: the preprocessing manifest (contract 2); ``None`` loads it
    with :func:`mmdf.prepare.manifest.load_manifest`. A finished stack is left
    as it is unless ``force``.
    """
    run_dir = cfg.run_dir
    stack_dir = run_dir / "stack"
    if (stack_dir / "metrics.json").is_file() and not force:
        log.info("%s is already stacked (%s exists); use --force to redo it", run_dir, stack_dir / "metrics.json")
        return stack_dir

    branches = load_branches(cfg)
    folds = resolve_folds(branches, run_dir / "folds.csv")
    train_names = folds[NAME_COL].tolist()
    y_train = folds[TARGET_COL].to_numpy(dtype=int)
    fold = folds[FOLD_COL].to_numpy(dtype=int)

    if manifest is None:
        manifest = _load_manifest(cfg, required=cfg.stack.use_metadata)
    meta = manifest if cfg.stack.use_metadata else None
    val_names = split_names(branches, "val")
    y_val = split_targets(branches, "val", val_names) if val_names is not None else None
    test_names = test_list_names(cfg, manifest)

    if test_names is not None:
        for b in branches:
            if b.preds["test"] is None:
                raise MmdfError(f"{b.file('test')} not found, but data.test_list is set; "
                                f"re-run `mmdf train {b.name}` to predict the test clips")
            check_covers(b.preds["test"], test_names, str(b.file("test")), "the test list")
    else:
        log.info("data.test_list is not set: no submission will be written")

    X = {"train": build_features(branches, "train", train_names, meta)}
    if val_names is not None:
        X["val"] = build_features(branches, "val", val_names, meta)
    if test_names is not None:
        X["test"] = build_features(branches, "test", test_names, meta)

    methods = make_methods([b.name for b in branches], cfg.stack, cfg.seed)
    if cfg.stack.method != "auto" and cfg.stack.method not in methods:
        raise MmdfError(f"stack.method={cfg.stack.method!r} is not one of: auto, {', '.join(methods)}")

    oof, fitted, preds = fit_methods(methods, X, y_train, fold)
    table = score_table(oof, y_train, preds.get("val", {}), y_val)
    if cfg.stack.method == "auto":
        chosen = choose_method(table)
        selection = "best stacked-OOF AUC, chosen automatically"
    else:
        chosen = cfg.stack.method
        selection = "set by stack.method"
    log.info("stacking: %s chosen (%s)", chosen, selection)

    stack_dir.mkdir(parents=True, exist_ok=True)
    (stack_dir / "metrics.json").unlink(missing_ok=True)  # a stack redone halfway is not finished
    save_config(cfg, stack_dir / "config.yaml")
    _write_tables(stack_dir, X, folds, oof, preds, val_names, y_val, test_names, chosen)
    save_stacker(stack_dir, method=chosen, estimator=fitted[chosen], fallback=fitted[FALLBACK],
                 features=list(X["train"].columns),
                 branches={b.name: str(b.dir) for b in branches}, use_metadata=meta is not None)
    fitted["lightgbm"].booster_.save_model(str(stack_dir / "lightgbm.txt"))

    unscored = {split: int((x["n_branches_scored"] == 0).sum()) for split, x in X.items()}
    submission, note = None, "not written: data.test_list is not set"
    if test_names is not None:
        sub = build_submission(test_names, preds["test"][chosen], cfg.stack.pred_column)
        submission = write_submission(sub, run_dir / SUBMISSION_NAME, test_names, cfg.stack.pred_column)
        note = (f"`{SUBMISSION_NAME}`, {len(test_names)} clips, column `{cfg.stack.pred_column}`, "
                f"method `{chosen}`; {unscored['test']} clip(s) scored by no branch got the "
                "LightGBM stacker's score from metadata")

    metrics = {
        "chosen": chosen,
        "selection": selection,
        "methods": _json_safe(table.to_dict(orient="records")),
        "n_train": len(train_names),
        "n_folds": int(len(np.unique(fold))),
        "n_val": len(val_names) if val_names is not None else 0,
        "n_test": len(test_names) if test_names is not None else 0,
        "unscored_by_any_branch": unscored,
        "lightgbm_best_iteration": int(fitted["lightgbm"].best_iteration_),
        "features": list(X["train"].columns),
        "branches": {b.name: str(b.dir) for b in branches},
        "submission": str(submission) if submission else None,
    }

    images = _plots(stack_dir, y_train, oof, y_val, preds.get("val"), chosen)
    status_counts = None
    if manifest is not None and "status" in manifest:
        status_counts = pd.crosstab(manifest["status"], manifest["split"]).rename_axis(index="status", columns=None)
    configs = {"stack (resolved)": (stack_dir / "config.yaml").read_text()}
    for b in branches:
        if (b.dir / "config.yaml").is_file():
            configs[f"branch {b.name} ({b.dir / 'config.yaml'})"] = (b.dir / "config.yaml").read_text()
    write_report(
        run_dir / REPORT_NAME, experiment=cfg.experiment, table=table, chosen=chosen, selection=selection,
        status_counts=status_counts, unscored=unscored, images=images, submission=submission,
        submission_note=note, importance=fitted["lightgbm"].feature_importance(), configs=configs,
    )
    # metrics.json last: its presence marks a finished stack
    (stack_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    _log_table(table, chosen)
    return stack_dir


def fit_methods(methods: dict, X: dict[str, pd.DataFrame], y_train: np.ndarray, fold: np.ndarray):
    """Stacked OOF of every method on the branches' folds, then each fitted on all train OOF.

    Returns ``(oof, fitted, preds)``: ``{method: OOF probs}``, ``{method: estimator}``,
    ``{split: {method: probs}}`` for the other splits of ``X``. Clips no branch
    scored take the metadata-aware LightGBM's score whatever the method.
    """
    oof, fitted = {}, {}
    for name, est in methods.items():
        log.info("stacking: cross-validating %s on %d folds", name, len(np.unique(fold)))
        oof[name] = cross_val_oof(est, X["train"], y_train, fold)
        fitted[name] = clone(est).fit(X["train"], y_train)
    preds = {split: {n: m.predict_proba(X[split])[:, 1] for n, m in fitted.items()}
             for split in X if split != "train"}
    for split, by_method in [("train", oof), *preds.items()]:
        n_scored = X[split]["n_branches_scored"].to_numpy()
        for name in by_method:
            by_method[name] = with_fallback(by_method[name], by_method[FALLBACK], n_scored)
    return oof, fitted, preds


def _write_tables(stack_dir, X, folds, oof, preds, val_names, y_val, test_names, chosen) -> None:
    feats = pd.concat([x.assign(split=s) for s, x in X.items()]).reset_index()
    feats.to_csv(stack_dir / "features.csv", index=False)
    oof_df = folds[[NAME_COL, FOLD_COL, TARGET_COL]].copy()
    for name, p in oof.items():
        oof_df[name] = p
    oof_df.to_csv(stack_dir / "oof.csv", index=False)
    if val_names is not None:
        target = pd.array(y_val if y_val is not None else [pd.NA] * len(val_names), dtype="Int8")
        pd.DataFrame({NAME_COL: val_names, TARGET_COL: target, "prob": preds["val"][chosen]}).to_csv(
            stack_dir / "val_pred.csv", index=False)
        val_all = pd.DataFrame({NAME_COL: val_names, TARGET_COL: target, **preds["val"]})
        val_all.to_csv(stack_dir / "val_all.csv", index=False)
    if test_names is not None:
        pd.DataFrame({
            NAME_COL: test_names, "prob": preds["test"][chosen],
            "n_branches_scored": X["test"]["n_branches_scored"].to_numpy().astype(int),
        }).to_csv(stack_dir / "test_pred.csv", index=False)


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


def _json_safe(obj):
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def _log_table(table: pd.DataFrame, chosen: str) -> None:
    for _, r in table.iterrows():
        val = "-" if math.isnan(r["val_auc"]) else f"{r['val_auc']:.4f}"
        log.info("%-14s stacked-OOF AUC %.4f TPR@1e-3 %.4f | val AUC %s%s", r["method"], r["oof_auc"],
                 r[f"oof_{TPR_KEY}"], val, "  <- chosen" if r["method"] == chosen else "")
