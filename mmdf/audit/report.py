"""The audit's outputs: ``audit.csv``, ``audit.md``, ``audit.png`` and a link from the run's ``report.md``.

The plot shows changes, not levels: what a team needs before submitting is which
perturbation moves its score, and by how much, next to the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mmdf.audit.config import BASELINE
from mmdf.audit.perturb import describe
from mmdf.audit.probes import CUES
from mmdf.audit.table import FINAL, METRICS
from mmdf.files import atomic_write
from mmdf.figures import markdown_table, pyplot



@dataclass
class AuditSummary:
    """What audit.md says besides the tables."""

    experiment: str
    split: str
    n_clips: int
    n_fake: int
    n_split: int  # clips in the split, before any subset
    seed: int
    seconds: float
    reused: list[str]  # perturbations taken whole from the cache
    warnings: list[str]


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    with atomic_write(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def plot_audit(table: pd.DataFrame, path: Path) -> Path:
    """Horizontal bars of the change in AUC and in TPR at FPR 1e-2, per perturbation and score."""
    plt = pyplot()
    rows = table[table["perturbation"] != BASELINE]
    names = list(dict.fromkeys(rows["perturbation"])) or ["(none)"]
    labels = list(dict.fromkeys(table["score"]))
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.14 * len(names) * len(labels) + 2.4), sharey=True)
    height = 0.8 / max(1, len(labels))
    for ax, metric in zip(axes, ("auc", "tpr@fpr=0.01")):
        for j, label in enumerate(labels):
            part = rows[rows["score"] == label].set_index("perturbation").reindex(names)
            ax.barh(np.arange(len(names)) + (j - (len(labels) - 1) / 2) * height,
                    part[f"d_{metric}"].fillna(0.0), height=height, label=label)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel(f"change in {'AUC' if metric == 'auc' else 'TPR at FPR = 1e-2'}")
        ax.grid(True, axis="x", alpha=0.3)
    handles, _ = axes[0].get_legend_handles_labels()
    texts = [f"{lab}: unperturbed AUC {_base(table, lab, 'auc')}, TPR@1e-2 {_base(table, lab, 'tpr@fpr=0.01')}"
             for lab in labels]
    fig.legend(handles, texts, loc="lower center", ncol=min(3, len(labels)), fontsize=8, frameon=False)
    axes[0].set_yticks(np.arange(len(names)), names)
    axes[0].invert_yaxis()
    fig.suptitle("Robustness audit: perturbed minus unperturbed, same clips")
    fig.tight_layout(rect=(0, 0.04 + 0.03 * -(-len(labels) // 3), 1, 1))
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def _base(table: pd.DataFrame, label: str, metric: str) -> str:
    """The unperturbed value of a score's metric, as text."""
    base = table[(table["perturbation"] == BASELINE) & (table["score"] == label)][metric]
    return f"{base.iloc[0]:.3f}" if len(base) and np.isfinite(base.iloc[0]) else "-"


def score_section(table: pd.DataFrame, label: str) -> list[str]:
    """The table of one score (final or a branch), a row per perturbation."""
    part = table[table["score"] == label].drop(columns="score")
    cols = ["perturbation", "n_scored", "n_unchanged", "n_failed"]
    cols += [c for m in METRICS for c in (m, f"d_{m}")]
    title = "Final (stacked) score" if label == FINAL else f"Branch: {label}"
    return [f"## {title}", "", markdown_table(part[cols], floatfmt=".3f"), ""]


def _header(summary: AuditSummary) -> list[str]:
    subset = (f", a stratified subset (seed {summary.seed}) of the split's {summary.n_split}"
              if summary.n_clips < summary.n_split else "")
    reused = f"; taken from the cache: {', '.join(summary.reused)}" if summary.reused else ""
    return [
        f"# Robustness audit: {summary.experiment}", "",
        f"Split `{summary.split}`: {summary.n_clips} clips ({summary.n_fake} fake, "
        f"{summary.n_clips - summary.n_fake} real){subset}. This audit took {summary.seconds:.0f} s{reused}.", "",
        "Every row is scored by `mmdf predict`'s own route (`predict_clips`), the unperturbed row (`none`) "
        "included; the final score is its stacked `score` before calibration (the submission's scale; "
        "`prob` where predict reports no `score`). `n_scored`: clips with a score on both sides; `d_` "
        "columns: perturbed minus unperturbed on those same clips. `n_unchanged`: clips the perturbation "
        "does not apply to (an audio one on a clip without audio, trimming a clip without silence), scored "
        "as they are; `n_failed`: clips the perturbation could not write (left out). With fewer than "
        "1/FPR real clips, TPR at that FPR is the TPR at FPR = 0.", "",
    ]


def write_markdown(path: Path, summary: AuditSummary, table: pd.DataFrame, probes: pd.DataFrame,
                   statuses: pd.DataFrame, image: Path | None) -> Path:
    """``audit.md``: warnings first, then a table per score, the plot, the probes and the clip counts."""
    lines = _header(summary)
    lines += ["## Shortcut warnings", ""]
    lines += [f"- **Warning**: {w}" for w in summary.warnings] or ["None: no single cheap cue reaches the threshold."]
    lines += [""]
    for label in dict.fromkeys(table["score"]):
        lines += score_section(table, label)
    if image is not None:
        lines += [f"![robustness audit]({image.name})", ""]
    shown = probes.assign(what=probes["cue"].map(CUES))
    lines += ["## Shortcut probes", "",
              "AUC of each cue alone as a score (`separation` = max(AUC, 1 - AUC); clips lacking the cue "
              "left out).", "", markdown_table(shown, floatfmt=".3f"), ""]
    lines += ["## Clips by outcome", "", markdown_table(statuses), ""]
    names = [n for n in dict.fromkeys(table["perturbation"]) if n != BASELINE]
    lines += ["## Perturbations", ""] + [f"- `{n}`: {describe(n)}" for n in names] + [""]
    with atomic_write(path) as tmp:
        tmp.write_text("\n".join(lines))
    return path
