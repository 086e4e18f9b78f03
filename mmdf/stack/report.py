"""The run report: a markdown page with the comparison table, ROC curves and histograms.

The ROC plot puts the false-positive rate on a log axis because the
tie-breaker metric lives at FPR = 1e-3, invisible on a linear axis.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from mmdf.figures import markdown_table, pyplot, save_figure
from mmdf.files import atomic_write
from mmdf.metrics import DEFAULT_MAX_FPR, roc_auc

# the calibrators of mmdf.stack.calibration (its KINDS), as the report and the model card name them
NAMES = {"none": "nothing (no calibrator lowered the cross-validated OOF log-loss)",
         "platt": "Platt scaling per fold model", "isotonic": "isotonic regression per fold model"}


def plot_roc(panels: Mapping[str, tuple[np.ndarray, Mapping[str, np.ndarray]]], path: Path) -> Path:
    """ROC curves, one panel per split: ``{title: (y_true, {method: scores})}``; log-scale FPR."""
    plt = pyplot()
    panels = {t: v for t, v in panels.items() if v[0] is not None and len(np.unique(v[0])) == 2}
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(6.5 * max(1, len(panels)), 5), squeeze=False)
    for ax, (title, (y, curves)) in zip(axes[0], panels.items()):
        n_real = int((np.asarray(y) == 0).sum())
        left = min(1e-4, 1.0 / max(n_real, 1))
        for name, p in curves.items():
            fpr, tpr, _ = roc_curve(y, p)
            # FPR = 0 cannot sit on a log axis: start the curve at the axis' left edge
            fpr = np.where(fpr == 0, left, fpr)
            auc = roc_auc(y, p)
            ax.plot(fpr, tpr, drawstyle="steps-post", label=f"{name} (AUC {auc:.3f})", lw=1.6)
        ax.axvline(DEFAULT_MAX_FPR, color="grey", ls="--", lw=1)
        ax.text(DEFAULT_MAX_FPR * 1.1, 0.99, "FPR = 1e-3", color="grey", fontsize=8, va="top")
        if n_real < 1 / DEFAULT_MAX_FPR:
            # below one real clip's worth of FPR the curve can only be flat
            ax.axvline(1.0 / n_real, color="lightgrey", ls=":", lw=1)
            ax.text(1.05 / n_real, 0.93, f"1/n_real = {1 / n_real:.1e}", color="grey", fontsize=8, va="top")
        ax.set_xscale("log")
        ax.set_xlim(left, 1.0)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("false-positive rate (log scale)")
        ax.set_ylabel("true-positive rate")
        ax.set_title(f"{title} (n={len(y)}, real={n_real})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


def kind_table(oof: pd.DataFrame, val: pd.DataFrame | None, kinds: dict, chosen: str) -> pd.DataFrame | None:
    """Per kind of fake: OOF AUC of real clips against it for each ``<branch>_only`` score and the chosen
    method, and the chosen method's val AUC. ``oof``/``val``: video_name, target and one column per method."""
    frames = {"train": oof, "val": val}
    kind_of = {s: f["video_name"].map(kinds.get(s, pd.Series(dtype=str))) for s, f in frames.items() if f is not None}
    fakes = sorted(k for k in kind_of["train"].dropna().unique() if k != "real")
    if not fakes:
        return None
    methods = [c for c in oof.columns if c.endswith("_only")] + [chosen]
    rows = []
    for fake in fakes:
        row = {"kind": fake}
        for split, frame in frames.items():
            if frame is None:
                continue
            sel = kind_of[split].isin(["real", fake]).to_numpy()
            for m in methods if split == "train" else [chosen]:
                y, p = frame.loc[sel, "target"].astype(int), frame.loc[sel, m]
                name = (m.removesuffix("_only") if m != chosen else f"stacked ({chosen})") + (" val" if split == "val" else "")
                row[name] = roc_auc(y, p) if y.nunique() == 2 and p.notna().all() else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def plot_histograms(panels: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path, method: str) -> Path:
    """Score histograms of real and fake clips, one panel per split: ``{title: (y, scores)}``."""
    plt = pyplot()
    panels = {t: v for t, v in panels.items() if v[0] is not None}
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(6 * max(1, len(panels)), 4), squeeze=False)
    bins = np.linspace(0, 1, 41)
    for ax, (title, (y, p)) in zip(axes[0], panels.items()):
        y = np.asarray(y)
        ax.hist(p[y == 0], bins=bins, alpha=0.6, label=f"real ({int((y == 0).sum())})", color="tab:blue")
        ax.hist(p[y == 1], bins=bins, alpha=0.6, label=f"fake ({int((y == 1).sum())})", color="tab:red")
        ax.set_xlabel(f"{method} score")
        ax.set_ylabel("clips")
        ax.set_title(title)
        ax.legend()
    return save_figure(fig, path)


# the shift's intervals: in the report's shift section, not in the methods table
INTERVAL_COLUMNS = ["oof_low", "oof_high", "difference_low", "difference_high", "shifted"]


def metrics_table(metrics: dict) -> str:
    """The methods table of a ``stack/metrics.json`` as text, the chosen method marked."""
    table = pd.DataFrame(metrics["methods"]).astype({"method": str}).drop(columns=INTERVAL_COLUMNS, errors="ignore")
    table["method"] = [m + (" *" if m == metrics.get("chosen") else "") for m in table["method"]]
    return markdown_table(table) + f"\n* = submitted ({metrics.get('selection', '')})"


def shortcut_lines(shortcuts: dict | None) -> list[str]:
    """The report's shortcut check: the metadata-only baseline, each cue alone, and the warnings in words."""
    if not shortcuts:
        return []
    model = shortcuts.get("model_auc")
    lines = ["## Shortcut check: metadata alone", "",
             f"A logistic regression on clip metadata alone, cross-validated on the same folds: stacked-OOF AUC "
             f"{'-' if model is None else f'{model:.3f}'}. Each cue alone (AUC in its better direction): "
             + ", ".join(f"{c} {'-' if a is None else f'{a:.3f}'}" for c, a in shortcuts.get("cues", {}).items())
             + ".", ""]
    warnings = shortcuts.get("warnings") or []
    lines += [f"**Warning:** {w}." for w in warnings] or ["No metadata cue reaches AUC 0.65."]
    return lines + [""]


def chance_lines(table: pd.DataFrame) -> list[str]:
    """The branches whose OOF AUC interval does not exclude chance: they did not earn their place here."""
    alone = table[table["method"].str.endswith("_only")]
    weak = alone[alone["oof_low"] <= 0.5] if "oof_low" in alone else alone.iloc[:0]
    if weak.empty:
        return ["Every branch's OOF AUC interval lies above chance (0.5).", ""]
    return [f"**Did not earn its place:** {r['method'].removesuffix('_only')}: OOF AUC {r['oof_auc']:.3f} "
            f"(95% interval {r['oof_low']:.3f} to {r['oof_high']:.3f}) does not exclude chance on these clips."
            for _, r in weak.iterrows()] + [""]


def shift_lines(table: pd.DataFrame, folds_note: str) -> list[str]:
    """The report's shift section: OOF against val for every branch and stacking method, in words."""
    lines = ["## Shift: OOF against val", "", f"Folds: {folds_note}.", ""] + chance_lines(table)
    if "shifted" not in table or table["shifted"].isna().all():
        return lines + ["No val labels: the shift between the train folds and val cannot be measured.", ""]
    cols = ["method", "oof_auc", "val_auc", "val_minus_oof", "difference_low", "difference_high", "shifted"]
    lines += ["Val minus OOF AUC with its 95% bootstrap interval (train and val clips resampled independently). "
              "A method whose whole interval lies below 0 learnt something on the train folds that val does "
              "not share: other speakers, identities or generators.", "",
              markdown_table(table[cols].astype({"shifted": object})), ""]
    shifted = table[table["shifted"].fillna(False).astype(bool)]
    for _, r in shifted.iterrows():
        lines.append(f"**Warning:** {r['method']}: val falls below OOF by more than the interval "
                     f"({r['oof_auc']:.3f} -> {r['val_auc']:.3f}, interval {r['difference_low']:+.3f} to "
                     f"{r['difference_high']:+.3f}).")
    if shifted.empty:
        lines.append("No method's val falls below its OOF by more than the interval.")
    return lines + [""]


def write_report(
    path: Path,
    *,
    experiment: str,
    table: pd.DataFrame,
    chosen: str,
    selection: str,
    status_counts: pd.DataFrame | None,
    unscored: Mapping[str, int],
    images: Mapping[str, Path],
    submission: Path | None,
    submission_note: str,
    importance: pd.Series | None,
    configs: Mapping[str, str],
    shortcuts: dict | None = None,
    kinds: pd.DataFrame | None = None,
    folds_note: str = "",
) -> Path:
    """Write ``report.md``; image links are relative to the report's folder."""
    lines = [
        f"# Run report: {experiment}",
        "",
        "## Stacking: methods compared",
        "",
        "Stacked OOF: every method cross-validated on the train clips' out-of-fold branch "
        "scores with the branches' own folds; val: the mean of those fold models "
        "applied to val (val labels are used for this table only).",
        "",
        markdown_table(table.drop(columns=INTERVAL_COLUMNS, errors="ignore")),
        "",
        f"**Submission method: `{chosen}`** ({selection}).",
        "",
        f"Submission: {submission_note}",
        "",
        *shift_lines(table, folds_note),
    ]
    if importance is not None and len(importance):
        lines += ["LightGBM feature importance (gain, mean over the fold models): "
                  + ", ".join(f"{k} {v:.1f}" for k, v in importance.items()), ""]
    if kinds is not None:
        lines += ["## By kind of fake", "",
                  "AUC of real clips against each kind of fake alone (stacked OOF; the last column on val): "
                  "which branch sees which kind.", "", markdown_table(kinds), ""]
    lines += shortcut_lines(shortcuts)
    lines += ["## Clips no branch could score", ""]
    lines += [f"- {split}: {n} (scored from metadata alone by the stacker)" for split, n in unscored.items()]
    lines += [""]
    rel = path.parent
    for title, img in images.items():
        # relative to the report, not resolved: a branch folder may be a link to another trial's
        lines += [f"## {title}", "", f"![{title}]({os.path.relpath(Path(img).absolute(), rel.absolute())})", ""]
    if status_counts is not None:
        lines += ["## Clips by manifest status", "", markdown_table(status_counts.reset_index()), ""]
    lines += ["## Configs used", ""]
    for name, text in configs.items():
        lines += [f"<details><summary>{name}</summary>", "", "```yaml", text.rstrip(), "```", "", "</details>", ""]
    with atomic_write(path) as tmp:
        tmp.write_text("\n".join(lines))
    return path


# --------------------------------------------------------------------------- calibration (for `mmdf predict`)


def plot_reliability(panels: Mapping[str, tuple[np.ndarray, Mapping[str, np.ndarray]]], path: Path,
                     n_bins: int = 10) -> Path:
    """Reliability diagrams, one panel per split: ``{title: (y, {curve: probs})}``; quantile bins."""
    from sklearn.calibration import calibration_curve

    plt = pyplot()
    panels = {t: v for t, v in panels.items() if v[0] is not None and len(np.unique(v[0])) == 2}
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5.5 * max(1, len(panels)), 5), squeeze=False)
    for ax, (title, (y, curves)) in zip(axes[0], panels.items()):
        ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfectly calibrated")
        for name, p in curves.items():
            frac, mean = calibration_curve(y, p, n_bins=n_bins, strategy="quantile")
            ax.plot(mean, frac, marker="o", lw=1.4, label=name)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("predicted probability (bin mean)")
        ax.set_ylabel("fraction of fakes")
        ax.set_title(f"{title} (n={len(y)})")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    return save_figure(fig, path)


def thresholds_table(thresholds: list[dict]) -> str:
    """The stored operating points as a markdown table."""
    frame = pd.DataFrame(thresholds)[["target_fpr", "threshold", "oof_tpr", "oof_fpr", "val_tpr", "val_fpr"]]
    return markdown_table(frame.rename(columns={"target_fpr": "target FPR", "threshold": "score threshold",
                                                "oof_tpr": "OOF TPR", "oof_fpr": "OOF FPR",
                                                "val_tpr": "val TPR", "val_fpr": "val FPR"}), floatfmt=".4g")


def calibration_lines(info: dict, image: Path | None, report_dir: Path) -> list[str]:
    """The report's section on the calibration and operating thresholds stored for `mmdf predict`."""
    cal = info["calibration"]
    cv = ", ".join(f"{k} {v:.4f}" for k, v in cal["oof_log_loss_cv"].items())
    lines = ["## Calibration and operating thresholds (for `mmdf predict`)", "",
             f"`{info['method']}`'s score is calibrated by **{NAMES[cal['kind']]}** (lowest OOF log-loss cross-validated "
             f"inside each of the branches' folds: {cv}; uncalibrated {cal['oof_log_loss_raw']:.4f}), one "
             f"calibrator per fold model, fitted on that fold's OOF scores ({info['n_oof']} scored train clips in all); "
             "the fold models' calibrated probabilities are averaged."]
    if "val_log_loss" in info:
        v = info["val_log_loss"]
        lines += [f"Val log-loss: uncalibrated {v['raw']:.4f}, calibrated {v['calibrated']:.4f}."]
    lines += ["", f"A clip is called fake when its score is at least the threshold; `mmdf predict` uses "
              f"FPR = {info['default_fpr']:g} unless `--fpr` names another stored one. With "
              f"{info['thresholds'][0]['n_real_oof']} real OOF clips, an FPR below "
              f"{1 / max(info['thresholds'][0]['n_real_oof'], 1):.1e} is measured as 0.", "",
              thresholds_table(info["thresholds"]), ""]
    if image is not None:
        rel = Path(image).resolve().relative_to(report_dir.resolve())
        lines += [f"![Reliability diagram]({rel})", ""]
    return lines


def insert_section(path: Path, lines: list[str], before: str = "## Configs used") -> Path:
    """Add a section to an existing report, before the heading ``before`` (else at the end), atomically."""
    text = Path(path).read_text(encoding="utf-8")
    section = "\n".join(lines).rstrip("\n") + "\n\n"
    at = text.find(before)
    text = text[:at] + section + text[at:] if at >= 0 else text.rstrip("\n") + "\n\n" + section
    with atomic_write(path) as tmp:
        tmp.write_text(text)
    return path
