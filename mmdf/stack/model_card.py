"""``runs/<experiment>/model_card.md``: what a finished run is, how well it does, and what it cannot do.

Written by `mmdf stack` for whoever receives the run folder (an analyst
running `mmdf predict` on a clip somebody sent, a reviewer of a submission):
the data it learned from (clips by split and status), its branches and their
configs, its metrics (AUC, TPR at each stored FPR on OOF and val), the
operating thresholds and calibration `mmdf predict` uses, and its known
limits (which clips it cannot score, and why).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from mmdf.figures import markdown_table
from mmdf.files import atomic_write
from mmdf.prepare.media import VIDEO_SUFFIXES
from mmdf.stack.report import NAMES, thresholds_table
from mmdf.train.branches import get_branch

log = logging.getLogger(__name__)

MODEL_CARD = "model_card.md"


def data_lines(data) -> list[str]:
    """Clip counts by split and label, and by split and manifest status."""
    lines = ["## Data", ""]
    counts = {"train": (len(data.y_train), int(data.y_train.sum()))}
    if data.y_val is not None:
        counts["val"] = (len(data.y_val), int(np.nansum(data.y_val)))
    frame = pd.DataFrame([{"split": s, "clips": n, "fake": f, "real": n - f} for s, (n, f) in counts.items()])
    if data.test_names is not None:
        frame = pd.concat([frame, pd.DataFrame([{"split": "test", "clips": len(data.test_names)}])])
    lines += [markdown_table(frame, floatfmt=".0f"), ""]
    if data.manifest is not None and "status" in data.manifest:
        status = pd.crosstab(data.manifest["status"], data.manifest["split"]).rename_axis(index="status", columns=None)
        lines += ["Clips by preprocessing status (`ok` = both modalities usable):", "",
                  markdown_table(status.reset_index(), floatfmt=".0f"), ""]
    else:
        lines += ["(No preprocessing manifest was available: clip counts by status are unknown.)", ""]
    return lines


def _branch_metrics(branch_dir: Path) -> str:
    path = branch_dir / "metrics.json"
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError):
        return "-"
    parts = [f"{s} AUC {m[s]['auc']:.3f}" for s in ("oof", "val") if isinstance(m.get(s), dict) and "auc" in m[s]]
    return ", ".join(parts) or "-"


def branch_lines(data) -> list[str]:
    """Each branch: what it looks at, its own metrics, and its resolved config."""
    lines = ["## Branches", ""]
    for b in data.branches:
        branch = get_branch(b.name)
        lines += [f"- **{b.name}** ({branch.describe}; unusable where `{branch.status_col}` is not `ok`), "
                  f"folder `{b.dir.name}`: {_branch_metrics(b.dir)}"]
    lines += [""]
    for b in data.branches:
        cfg_file = b.dir / "config.yaml"
        if cfg_file.is_file():
            lines += [f"<details><summary>{b.name} config ({cfg_file.name})</summary>", "", "```yaml",
                      cfg_file.read_text().rstrip(), "```", "", "</details>", ""]
    return lines


def metrics_lines(table: pd.DataFrame, chosen: str, calibration: dict) -> list[str]:
    """The methods' AUCs, and the chosen method's TPR at each stored FPR on OOF and val."""
    lines = ["## Metrics", "",
             "Stacked OOF: cross-validated on the branches' folds; val: fitted on all train, applied to val.", "",
             markdown_table(table), "", f"Chosen method: **`{chosen}`**.", "",
             "TPR of the chosen method at each stored FPR (clips some branch scored):", ""]
    rows = [{"FPR": r["target_fpr"], "OOF TPR": r["oof_tpr"], "val TPR": r["val_tpr"], "val FPR": r["val_fpr"]}
            for r in calibration["thresholds"]]
    return lines + [markdown_table(pd.DataFrame(rows), floatfmt=".4g"), ""]


def calibration_card_lines(calibration: dict) -> list[str]:
    cal = calibration["calibration"]
    lines = ["## Calibration and thresholds", "",
             f"`prob` from `mmdf predict` is the `{calibration['method']}` score calibrated by **{NAMES[cal['kind']]}** "
             f"(one calibrator per fold model, on that fold's OOF scores; chosen by OOF log-loss cross-validated "
             f"inside each fold: "
             + ", ".join(f"{k} {v:.4f}" for k, v in cal["oof_log_loss_cv"].items())
             + f"; uncalibrated {cal['oof_log_loss_raw']:.4f})."]
    if "val_log_loss" in calibration:
        v = calibration["val_log_loss"]
        lines += [f"On val: log-loss {v['raw']:.4f} uncalibrated, {v['calibrated']:.4f} calibrated."]
    lines += ["", f"`decision` is `fake` where the raw score is at least the threshold of the chosen FPR "
              f"(default {calibration['default_fpr']:g}; `mmdf predict --fpr` picks another). It is set for few "
              "false alarms, so a clip whose `prob` is above 0.5 may still be called real:", "",
              thresholds_table(calibration["thresholds"]), ""]
    return lines


def limits_lines(data, calibration: dict) -> list[str]:
    """What the run cannot score, and how far its numbers can be trusted."""
    unusable = [f"`{b.name}` needs `{get_branch(b.name).status_col}` = ok" for b in data.branches]
    unscored = {s: int((x["n_branches_scored"] == 0).sum()) for s, x in data.X.items()}
    n_real = calibration["thresholds"][0]["n_real_oof"]
    lines = ["## Known limits", "",
             f"- Not scored (empty `prob`, `status` says why): files that are missing, empty, corrupt or not "
             f"a video container ({' '.join(VIDEO_SUFFIXES)}), and clips no branch can use ("
             + "; ".join(unusable) + "). In this run's data: "
             + ", ".join(f"{s} {n}" for s, n in unscored.items()) + " such clips.",
             "- A clip that only some branches could score is judged by those alone: a swapped face on a "
             "clip without audio, or a cloned voice on a clip without a detectable face, is seen by one branch.",
             f"- FPRs below 1/{n_real} (one of the {n_real} real OOF clips) are not measured: there a "
             "threshold sits above every real training clip and its true FPR is unknown.",
             "- Trained on one dataset's kinds of fake and recording conditions; new generators, heavy "
             "re-encoding or other languages may lower the scores without warning."]
    if data.manifest is not None and "duration" in data.manifest:
        d = pd.to_numeric(data.manifest["duration"], errors="coerce")
        if d.notna().any():
            lines += [f"- Clip durations seen in training: {d.min():.1f}-{d.max():.1f} s."]
    return lines + [""]


def write_model_card(cfg, data, table: pd.DataFrame, chosen: str, calibration: dict) -> Path:
    """Write ``<run_dir>/model_card.md`` from the finished stack's data, table and calibration."""
    lines = [f"# Model card: {cfg.experiment}", "",
             "Scores short talking-face clips (a face with its voice) with the probability that they are "
             f"deepfakes: `mmdf predict --run {cfg.run_dir} CLIPS...`. Built from the data in "
             f"`{cfg.data.root}`.", ""]
    lines += data_lines(data) + branch_lines(data) + metrics_lines(table, chosen, calibration)
    lines += calibration_card_lines(calibration) + limits_lines(data, calibration)
    path = cfg.run_dir / MODEL_CARD
    with atomic_write(path) as tmp:
        tmp.write_text("\n".join(lines))
    log.info("model card: %s", path)
    return path
