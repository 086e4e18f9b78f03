"""Calibration of the submitted method's score, and its operating thresholds, for `mmdf predict`.

The stacked score ranks clips well (that is what AUC measures) but is not a
probability one can act on: a mean of two branch probabilities, a rank
quantile or a small tree ensemble's output is over- or under-confident in
ways that differ by method, and by fold model. Val, test and `mmdf predict`
are scored by the method's fold models averaged (:mod:`mmdf.stack.ensemble`),
and each fold model's OOF scores are its own held-out fold, so each fold
model gets its own calibrator fitted on that fold's OOF scores and the
calibrated probabilities are averaged: scikit-learn's
``CalibratedClassifierCV(ensemble=True)`` recipe, on folds the stack already
has. One calibrator on the pooled OOF scores would learn a blur of the fold
models' offsets (on the demo their Platt intercepts ranged from -1.8 to
+1.1), which their average does not have.

The candidates are none, isotonic regression and Platt scaling (a logistic
regression on the score's log-odds), both with Platt's smoothed targets (see
:func:`fit_calibrator`). The one with the lowest log-loss *cross-validated
inside each fold* (each fold's OOF scores split again, stratified and seeded;
every score calibrated by a calibrator that did not see it) is chosen; val is
never used for the choice.

Operating thresholds are on the raw score (isotonic steps would merge
clips): for each target false-positive rate, the lowest score threshold whose
OOF FPR is at most the target, i.e. the ROC point the challenge metric reads
(:func:`mmdf.metrics.tpr_at_fpr`); a clip is called fake when ``score >=
threshold``. The TPR and FPR each reached on OOF and on val are stored beside it.

Clips that no branch scored are left out of both (``mmdf predict`` gives them
no probability). Everything is stored as plain JSON numbers in
``stack/calibration.json``: per fold model, isotonic's
``X_thresholds_``/``y_thresholds_`` or Platt's ``coef``/``intercept``.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_curve
from sklearn.model_selection import KFold, StratifiedKFold

from mmdf.errors import MmdfError
from mmdf.files import atomic_write, json_safe
from mmdf.stack.features import logit
from mmdf.stack.report import calibration_lines, insert_section, plot_reliability

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
FORMAT = 2  # 2: one calibrator per fold model
# No calibrated probability is more certain than this (the smoothed targets keep them well inside).
PROB_CLIP = 1e-3
KINDS = ("none", "platt", "isotonic")  # in order of preference on a tie
INNER_SPLITS = 5  # splits of each fold's OOF scores that estimate a calibrator's held-out log-loss


def fit_calibrator(kind: str, score: np.ndarray, y: np.ndarray) -> dict:
    """A fitted calibrator as plain data: ``{kind, ...its numbers}``.

    Both learn from smoothed targets, as Platt (1999) prescribes, so that a
    few hundred clips never give a probability of exactly 0 or 1: Platt's
    targets ``(N+ + 1)/(N+ + 2)`` and ``1/(N- + 2)`` (logistic regression on
    the score's log-odds, each clip weighted as fake by its target and as real
    by the rest); isotonic's steps each get the Laplace correction
    ``(fakes + 1)/(clips + 2)``, made monotone again by a weighted isotonic fit.
    """
    score = np.asarray(score, dtype=float)
    y = np.asarray(y, dtype=int)
    if kind == "none":
        return {"kind": kind}
    if kind == "isotonic":
        iso = IsotonicRegression(out_of_bounds="clip").fit(score, y)
        steps = pd.DataFrame({"step": iso.predict(score), "y": y}).groupby("step")["y"].agg(["sum", "count"])
        smooth = IsotonicRegression().fit(steps.index.to_numpy(), (steps["sum"] + 1) / (steps["count"] + 2),
                                          sample_weight=steps["count"] + 2).predict(steps.index.to_numpy())
        lookup = dict(zip(steps.index.to_numpy(), smooth))
        return {"kind": kind, "x": iso.X_thresholds_.tolist(), "y": [float(lookup[v]) for v in iso.y_thresholds_]}
    if kind == "platt":
        n_fake, n_real = int(y.sum()), int(len(y) - y.sum())
        target = np.where(y == 1, (n_fake + 1) / (n_fake + 2), 1 / (n_real + 2))
        x = np.tile(logit(score).reshape(-1, 1), (2, 1))
        lr = LogisticRegression(C=1e4, max_iter=1000).fit(
            x, np.r_[np.ones(len(y)), np.zeros(len(y))], sample_weight=np.r_[target, 1 - target])
        return {"kind": kind, "coef": float(lr.coef_[0, 0]), "intercept": float(lr.intercept_[0])}
    raise MmdfError(f"unknown calibration kind {kind!r}; one of {', '.join(KINDS)}")


def apply_calibrator(cal: dict, score) -> np.ndarray:
    """Calibrated probabilities of raw scores (NaN stays NaN); isotonic as scikit-learn predicts it."""
    score = np.asarray(score, dtype=float)
    if cal["kind"] == "none":
        p = score
    elif cal["kind"] == "isotonic":
        p = np.interp(score, np.asarray(cal["x"], dtype=float), np.asarray(cal["y"], dtype=float))
    else:
        p = expit(cal["coef"] * logit(score) + cal["intercept"])
    return np.where(np.isnan(score), np.nan, np.clip(p, PROB_CLIP, 1 - PROB_CLIP))


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    return float(log_loss(y, np.clip(p, PROB_CLIP, 1 - PROB_CLIP), labels=[0, 1]))


def fit_calibration(kind: str, score: np.ndarray, y: np.ndarray, fold: np.ndarray, folds=None) -> dict:
    """``{kind, members}``: one calibrator per fold of ``folds`` (default ``np.unique(fold)``: the fold
    models' order), each fitted on that fold's OOF scores, i.e. on the clips its fold model never saw;
    a fold without scores keeps its model's score as it is."""
    folds = np.unique(fold) if folds is None else folds
    return {"kind": kind, "members": [fit_calibrator(kind, score[fold == k], y[fold == k]) if (fold == k).any()
                                      else {"kind": "none"} for k in folds]}


def apply_calibration(cal: dict, member_scores) -> np.ndarray:
    """Calibrated probabilities from the fold models' raw scores (K, n): each calibrated by its own
    calibrator, then averaged (NaN stays NaN). With ``none``, the fold models' mean."""
    member_scores = np.atleast_2d(np.asarray(member_scores, dtype=float))
    if cal["kind"] == "none":
        return apply_calibrator(cal, member_scores.mean(axis=0))
    if len(cal["members"]) != len(member_scores):
        raise MmdfError(f"the calibration has {len(cal['members'])} fold calibrators but the stacker "
                        f"{len(member_scores)} fold models; re-run `mmdf stack --force --config ...`")
    return np.mean([apply_calibrator(c, s) for c, s in zip(cal["members"], member_scores)], axis=0)


def _inner_splits(y: np.ndarray, seed: int):
    """Stratified splits of one fold's clips where both classes allow it, else plain shuffled ones."""
    n_min = int(min(np.bincount(y, minlength=2)))
    if n_min >= 2:
        return StratifiedKFold(min(INNER_SPLITS, n_min), shuffle=True, random_state=seed).split(y, y)
    return KFold(min(INNER_SPLITS, len(y)), shuffle=True, random_state=seed).split(y)


def cross_val_calibrated(kind: str, score: np.ndarray, y: np.ndarray, fold: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each OOF score calibrated by a calibrator fitted on the other scores *of its own fold* only."""
    out = np.full(len(score), np.nan)
    for k in np.unique(fold):
        idx = np.flatnonzero(fold == k)
        if len(idx) < 2:
            out[idx] = apply_calibrator({"kind": "none"}, score[idx])
            continue
        for fit, held in _inner_splits(y[idx], seed):
            cal = fit_calibrator(kind, score[idx[fit]], y[idx[fit]])
            out[idx[held]] = apply_calibrator(cal, score[idx[held]])
    return out


def choose_calibration(score: np.ndarray, y: np.ndarray, fold: np.ndarray, seed: int = 0, folds=None) -> dict:
    """The kind with the lowest cross-validated log-loss, fitted per fold on all its OOF scores; with the losses."""
    losses = {kind: _log_loss(y, cross_val_calibrated(kind, score, y, fold, seed)) for kind in KINDS}
    kind = min(KINDS, key=lambda k: losses[k])
    log.info("calibration: %s chosen (cross-validated OOF log-loss %s; uncalibrated %.4f)", kind,
             ", ".join(f"{k} {v:.4f}" for k, v in losses.items()), _log_loss(y, score))
    return {**fit_calibration(kind, score, y, fold, folds), "oof_log_loss_cv": losses,
            "oof_log_loss_raw": _log_loss(y, score)}


def threshold_at_fpr(y: np.ndarray, score: np.ndarray, target: float) -> float:
    """Lowest score threshold whose FPR (``score >= t`` among real clips) is at most ``target``.

    Where even the top score is a real clip's, the threshold sits just above
    the highest real score: nothing seen in training is called fake at it.
    """
    fpr, _, thr = roc_curve(y, score, drop_intermediate=False)
    t = float(thr[np.flatnonzero(fpr <= target)[-1]])
    if math.isinf(t):
        t = float(np.nextafter(np.max(score[y == 0]), np.inf))
    return t


def rates(y: np.ndarray | None, score: np.ndarray | None, threshold: float) -> dict:
    """TPR and FPR of ``score >= threshold`` (NaN without both classes)."""
    if y is None or score is None or len(np.unique(y)) < 2:
        return {"tpr": math.nan, "fpr": math.nan}
    flagged = np.asarray(score) >= threshold
    return {"tpr": float(flagged[y == 1].mean()), "fpr": float(flagged[y == 0].mean())}


def operating_points(y: np.ndarray, score: np.ndarray, fprs: list[float],
                     y_val: np.ndarray | None = None, val: np.ndarray | None = None) -> list[dict]:
    """One row per target FPR: its threshold and the TPR/FPR it reached on OOF and val."""
    rows = []
    for target in sorted(fprs):
        t = threshold_at_fpr(y, score, target)
        o, v = rates(y, score, t), rates(y_val, val, t)
        rows.append({"target_fpr": target, "threshold": t, "oof_tpr": o["tpr"], "oof_fpr": o["fpr"],
                     "val_tpr": v["tpr"], "val_fpr": v["fpr"],
                     "n_real_oof": int((y == 0).sum()), "n_real_val": int((y_val == 0).sum()) if y_val is not None
                     else 0})
    return rows


def _scored(score, n_scored, y=None):
    """The rows some branch scored (the others get no probability from `mmdf predict`)."""
    if score is None:
        return None, None, None
    keep = np.asarray(n_scored) > 0
    return keep, np.asarray(score, dtype=float)[keep], None if y is None else np.asarray(y)[keep]


def calibrate_stack(stack_dir: Path, data, chosen: str, oof: dict, val, stack_cfg, seed: int = 0) -> dict:
    """Fit, evaluate and store (``stack/calibration.json``) the calibration and thresholds of ``chosen``.

    ``data`` is the run's :class:`mmdf.stack.run.StackData`; ``oof`` the stacked
    OOF of every method (:func:`mmdf.stack.run.fit_methods`), ``val`` what
    :func:`val_scores` gives for the chosen method's fold models. Returns what was stored.
    """
    keep, score, y = _scored(oof[chosen], data.X["train"]["n_branches_scored"], data.y_train)
    if len(np.unique(y)) < 2:
        raise MmdfError("cannot calibrate: the scored train clips are all of one class")
    cal = choose_calibration(score, y, data.fold[keep], seed, np.unique(data.fold))
    info = {"format": FORMAT, "method": chosen, "calibration": cal, "default_fpr": stack_cfg.default_fpr}
    info["thresholds"] = operating_points(y, score, stack_cfg.target_fprs, *(val[:2] if val else (None, None)))
    info.update(n_oof=int(len(y)), n_val=0 if val is None else int(len(val[0])))
    if val is not None and len(np.unique(val[0])) == 2:
        info["val_log_loss"] = {"raw": _log_loss(val[0], val[1]),
                                "calibrated": _log_loss(val[0], apply_calibration(info["calibration"], val[2]))}
    save_calibration(stack_dir, info)
    return info


def val_scores(data, ensemble) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(targets, raw scores, the fold models' scores (K, n)) of the val clips some branch scored; None without."""
    if "val" not in data.X or data.y_val is None:
        return None
    keep = data.X["val"]["n_branches_scored"].to_numpy() > 0
    members = ensemble.member_probas(data.X["val"])[:, keep]
    return np.asarray(data.y_val)[keep], members.mean(axis=0), members


def save_calibration(stack_dir: Path, info: dict) -> Path:
    path = Path(stack_dir) / CALIBRATION_FILE
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(json_safe(info), indent=1, allow_nan=False))
    return path


def load_calibration(stack_dir: str | Path) -> dict | None:
    """The stored calibration and thresholds, or ``None`` for a run stacked before they existed."""
    path = Path(stack_dir) / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MmdfError(f"{path}: not a readable calibration file ({exc}); re-run `mmdf stack --force`") from None
    if info.get("format") != FORMAT or info.get("calibration", {}).get("kind") not in KINDS:
        raise MmdfError(f"{path}: unknown calibration format; re-run `mmdf stack --force --config ...`")
    return info


def pick_threshold(info: dict, fpr: float | None = None) -> dict:
    """The stored operating point for ``fpr`` (default: the run's ``default_fpr``)."""
    fpr = info["default_fpr"] if fpr is None else fpr
    for row in info["thresholds"]:
        if math.isclose(row["target_fpr"], fpr, rel_tol=1e-9):
            return row
    stored = ", ".join(f"{r['target_fpr']:g}" for r in info["thresholds"])
    raise MmdfError(f"no threshold stored for FPR {fpr:g}; this run has: {stored} "
                    "(set stack.target_fprs and re-run `mmdf stack --force`)")


def calibrate_and_report(cfg, stack_dir: Path, data, chosen: str, oof: dict, ensemble, report: Path) -> dict:
    """:func:`calibrate_stack`, then the reliability diagram and the report's thresholds section."""
    val = val_scores(data, ensemble)  # the fold models score val once, for the log-loss and the diagram
    info = calibrate_stack(stack_dir, data, chosen, oof, val, cfg.stack, cfg.seed)
    cal = info["calibration"]
    keep, score, y = _scored(oof[chosen], data.X["train"]["n_branches_scored"], data.y_train)
    panels = {"train, stacked OOF": (y, {"uncalibrated": score})}
    if cal["kind"] != "none":
        panels["train, stacked OOF"][1][f"{cal['kind']} (cross-validated)"] = \
            cross_val_calibrated(cal["kind"], score, y, data.fold[keep], cfg.seed)
    if val is not None:
        panels["val"] = (val[0], {"uncalibrated": val[1]} if cal["kind"] == "none" else
                         {"uncalibrated": val[1], cal["kind"]: apply_calibration(cal, val[2])})
    image = plot_reliability(panels, Path(stack_dir) / "reliability.png")
    if Path(report).is_file():
        insert_section(report, calibration_lines(info, image, Path(report).parent))
    return info
