"""The comparison of an experiment's variants: results.csv, summary.csv, summary.md, summary.png.

``results.csv`` has one row per trial (variant x seed) with every step's
OOF/val AUC and TPR@FPR=1e-3, wall time and peak memory; ``summary.csv``
one row per variant: the metric step's scores as mean and standard
deviation over seeds (``std`` is NaN with a single seed: one run tells no
spread), the AUC differences from the first variant paired by seed, the
wall time of a trial (all its steps, and those it computed itself) and the
largest peak memory of any step (one process, and the step's process tree).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from mmdf.experiment.records import read_records
from mmdf.experiment.spec import Experiment
from mmdf.experiment.steps import step_metrics
from mmdf.files import atomic_write
from mmdf.figures import markdown_table, pyplot

SCORES = ("oof_auc", "oof_tpr", "val_auc", "val_tpr", "val_minus_oof", "shifted")
DELTA_SCORES = ("oof_auc", "val_auc")


def collect_results(exp: Experiment) -> pd.DataFrame:
    """One row per trial: its scores per step (``<step>_<score>``), state, time and memory."""
    rows = []
    for t in exp.trials:
        records = read_records(t.run_dir)
        row: dict = {"variant": t.variant, "seed": t.seed, "run_dir": str(t.run_dir)}
        done = all(records.get(s, {}).get("state") == "done" for s in exp.spec.steps)
        row["state"] = "done" if done else ("partial" if records else "not run")
        for step in exp.spec.steps:
            row.update(_step_columns(step, records.get(step, {}), t.run_dir))
        walls = [row[f"{s}_wall_s"] for s in exp.spec.steps]
        own = [w for s, w in zip(exp.spec.steps, walls) if not row[f"{s}_reused_from"] and not math.isnan(w)]
        row["wall_s"] = float(np.nansum(walls)) if not all(map(math.isnan, walls)) else math.nan
        row["own_wall_s"] = float(sum(own))
        row["peak_rss_mb"] = _nanmax([row[f"{s}_peak_rss_mb"] for s in exp.spec.steps])
        row["peak_tree_mb"] = _nanmax([row[f"{s}_peak_tree_mb"] for s in exp.spec.steps])
        for key in SCORES:
            row[key] = row.get(f"{exp.spec.metric}_{key}", math.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def _step_columns(step: str, rec: dict, run_dir) -> dict:
    """A step's columns of a trial's row: time, memory, where it came from and its scores."""
    row = {f"{step}_wall_s": _num(rec.get("wall_s")), f"{step}_peak_rss_mb": _num(rec.get("peak_rss_mb")),
           f"{step}_peak_tree_mb": _num(rec.get("peak_tree_mb")),
           f"{step}_reused_from": rec.get("reused_from") or ""}
    if step != "prepare":
        scores = step_metrics(step, run_dir) if rec.get("state") == "done" else None
        for key in SCORES:
            row[f"{step}_{key}"] = (scores or {}).get(key, math.nan)
        row[f"{step}_val_minus_oof"] = row[f"{step}_val_auc"] - row[f"{step}_oof_auc"]
    return row


def _nanmax(values: list[float]) -> float:
    return float(np.nanmax(values)) if not all(map(math.isnan, values)) else math.nan


def _num(value) -> float:
    return math.nan if value is None else float(value)


def summarize(results: pd.DataFrame, variants: list[str]) -> pd.DataFrame:
    """Per variant (in the file's order): mean and std over seeds of each score, time, memory.

    ``delta_<score>_mean/std``: the variant minus the first variant, seed by
    seed (both runs of a pair share seed and folds, so the spread of the
    differences is what tells a change from seed noise).
    """
    rows = []
    done = results[results["state"] == "done"]
    first = done[done["variant"] == variants[0]]
    reference = first.set_index(_seed_key(first))
    for variant in variants:
        r = done[done["variant"] == variant]
        row: dict = {"variant": variant, "n_seeds": len(r)}
        for key in SCORES:
            row.update(_mean_std(key, r[key]))
        paired = r.set_index(_seed_key(r))
        for key in DELTA_SCORES:
            common = paired.index.intersection(reference.index)
            row.update(_mean_std(f"delta_{key}", paired.loc[common, key] - reference.loc[common, key]))
        row["wall_s"] = float(r["wall_s"].mean()) if len(r) else math.nan
        row["own_wall_s"] = float(r["own_wall_s"].mean()) if len(r) else math.nan
        row["peak_rss_mb"] = float(r["peak_rss_mb"].max()) if len(r) else math.nan
        row["peak_tree_mb"] = float(r["peak_tree_mb"].max()) if len(r) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _seed_key(frame: pd.DataFrame) -> pd.Index:
    return pd.Index(frame["seed"].fillna(-1).astype(int), name="seed")


def _mean_std(name: str, values: pd.Series) -> dict[str, float]:
    v = values.dropna().to_numpy(dtype=float)
    return {f"{name}_mean": float(v.mean()) if len(v) else math.nan,
            f"{name}_std": float(v.std(ddof=1)) if len(v) > 1 else math.nan}


def write_summary(exp: Experiment) -> Path:
    """Write the four files under the experiment's folder; returns ``summary.md``'s path."""
    root = exp.root
    root.mkdir(parents=True, exist_ok=True)
    results = collect_results(exp)
    summary = summarize(results, exp.variants)
    # atomic: runs of --variants on several machines may finish at the same time
    for name, frame in (("results.csv", results), ("summary.csv", summary)):
        with atomic_write(root / name) as tmp:
            frame.to_csv(tmp, index=False)
    plot = plot_summary(summary, results, exp.spec.metric, root / "summary.png")
    md = root / "summary.md"
    with atomic_write(md) as tmp:
        tmp.write_text(summary_markdown(exp, summary, results, plot))
    return md


def summary_markdown(exp: Experiment, summary: pd.DataFrame, results: pd.DataFrame, plot: Path | None) -> str:
    seeds = f"seeds {', '.join(map(str, exp.spec.seeds))}" if exp.spec.seeds else "one run per variant"
    table = pd.DataFrame({"variant": summary["variant"], "runs": summary["n_seeds"]})
    for key, title in (("oof_auc", "OOF AUC"), ("oof_tpr", "OOF TPR@1e-3"),
                       ("val_auc", "val AUC"), ("val_tpr", "val TPR@1e-3")):
        table[title] = [_pm(m, s) for m, s in zip(summary[f"{key}_mean"], summary[f"{key}_std"])]
    if len(summary) > 1:
        for key, title in (("oof_auc", "Δ OOF AUC"), ("val_auc", "Δ val AUC")):
            table[title] = [_pm(m, sd, signed=True) if i else "-" for i, (m, sd) in
                            enumerate(zip(summary[f"delta_{key}_mean"], summary[f"delta_{key}_std"]))]
    table["val − OOF"] = [_pm(m, s, signed=True) for m, s in zip(summary["val_minus_oof_mean"],
                                                                  summary["val_minus_oof_std"])]
    table["wall s"] = [f"{w:.0f}" if not math.isnan(w) else "-" for w in summary["wall_s"]]
    table["own s"] = [f"{w:.0f}" if not math.isnan(w) else "-" for w in summary["own_wall_s"]]
    table["peak MiB"] = [_mib(p, t) for p, t in zip(summary["peak_rss_mb"], summary["peak_tree_mb"])]
    lines = [
        f"# Experiment: {exp.name}",
        "",
        f"File: `{exp.path}`. Steps: {', '.join(exp.spec.steps)}. Scores of the **{exp.spec.metric}** step "
        f"({'the chosen stacking method' if exp.spec.metric == 'stack' else 'the branch alone'}), "
        f"{seeds}; mean ± standard deviation over seeds. Δ: the variant minus `{exp.variants[0]}`, "
        "paired seed by seed (same seed, same folds).",
        "",
        markdown_table(table),
        "",
        "Wall s: the steps of one run of the variant, reused steps counted with the time they took "
        "where they were computed (preprocessing with the time `mmdf prepare` took in this experiment: "
        "a few seconds where the feature cache had every clip already); own s: the steps "
        "computed for this variant itself, not reused from another. Peak MiB: resident memory of the "
        "largest process of any step"
        + ("" if exp.spec.isolate else " (the main process: steps ran in-process)")
        + " / of a step's whole process tree (workers included, sampled every 0.5 s).",
        "",
    ]
    lines += shift_warnings(results, exp.spec.metric)
    if plot is not None:
        lines += [f"![AUC per variant]({plot.name})", ""]
    pending = results[results["state"] != "done"]
    if len(pending):
        lines += ["Not finished: " + ", ".join(
            f"{v}{'' if s is None or s != s else f' (seed {int(s)})'}: {st}"
            for v, s, st in zip(pending["variant"], pending["seed"], pending["state"])), ""]
    return "\n".join(lines)


def shift_warnings(results: pd.DataFrame, metric: str) -> list[str]:
    """In words: the variants whose val fell below their OOF by more than the bootstrap interval."""
    done = results[results["state"] == "done"]
    if done["shifted"].isna().all():
        return ["No val labels (or no OOF): the shift from OOF to val is not measured.", ""]
    counts = done.groupby("variant", sort=False)["shifted"].agg(["sum", "count"])
    hit = counts[counts["sum"] > 0]
    if hit.empty:
        return [f"Val − OOF: the {metric} step's val AUC fell below its OOF AUC by more than the 95% bootstrap "
                "interval in no run.", ""]
    runs = ", ".join(f"`{v}` ({int(r['sum'])} of {int(r['count'])} runs)" for v, r in hit.iterrows())
    return [f"**Shift warning:** the {metric} step's val AUC fell below its OOF AUC by more than the 95% "
            f"bootstrap interval in {runs}: what was learnt on the train folds does not carry over to val "
            "(see each run's report.md, section \"Shift: OOF against val\").", ""]


def _mib(process: float, tree: float) -> str:
    return " / ".join("-" if math.isnan(v) else f"{v:.0f}" for v in (process, tree))


def _pm(mean: float, std: float, signed: bool = False) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:{'+' if signed else ''}.4f}" + ("" if math.isnan(std) else f" ± {std:.4f}")


def plot_summary(summary: pd.DataFrame, results: pd.DataFrame, metric: str, path: Path) -> Path | None:
    """AUC per variant, OOF and val side by side: mean, error bar = std over seeds, dots = each seed."""
    if summary[["oof_auc_mean", "val_auc_mean"]].isna().all().all():
        return None
    plt = pyplot()
    n = len(summary)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * n + 2), 3.6))
    x = np.arange(n)
    position = {v: i for i, v in enumerate(summary["variant"])}
    done = results[results["state"] == "done"]
    for offset, key, label, color in ((-0.12, "oof_auc", "OOF", "C0"), (0.12, "val_auc", "val", "C1")):
        err = summary[f"{key}_std"].fillna(0).to_numpy()
        ax.errorbar(x + offset, summary[f"{key}_mean"], yerr=err, fmt="o", capsize=4, label=label, color=color)
        if done["seed"].notna().any():
            ax.scatter(done["variant"].map(position) + offset + 0.06, done[key], s=10, alpha=0.5, color=color)
    ax.set_xticks(x, summary["variant"], rotation=20, ha="right")
    ax.set_ylabel(f"AUC ({metric})")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path
