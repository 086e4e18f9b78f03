"""The pipeline's steps as the experiment runner sees them.

For each step: what it reads from the config (its fingerprint: two variants
whose fingerprints agree would compute the same outputs, so the second one
reuses the first one's), which outputs it leaves in the run folder, how to
tell that it finished, how to run it (a library call, or the ``mmdf``
command in a process of its own) and where its AUCs are.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from mmdf.config import Config, to_dict
from mmdf.metrics import TPR_KEY

# Settings that change how fast a step runs, never what it computes (the prepare section's
# own speed-only settings are left out by the feature cache's key, which the fingerprint uses).
SPEED_ONLY = ("experiment", "runs_dir", "train.progress")
# What each step does not read (beyond SPEED_ONLY); its upstream steps enter through their fingerprints.
NOT_READ = {
    "prepare": ("seed", "folds", "train", "stack"),
    "audio": ("train.visual", "prepare.faces", "stack"),
    "visual": ("train.audio", "prepare.mel", "stack"),
    "stack": ("train",),
}
# A branch reads the prepare keys it needs itself (so a mel change leaves the visual branch alone).
UPSTREAM = {"prepare": (), "audio": (), "visual": (), "stack": ("audio", "visual")}


def fingerprint(step: str, cfg: Config, upstream: Mapping[str, str] = {}) -> str:
    """Hash of everything ``step`` reads from ``cfg``, and of the upstream steps' fingerprints."""
    from mmdf.prepare.cache import feature_params

    skip = SPEED_ONLY + NOT_READ[step]
    tree = {**to_dict(cfg), "prepare": feature_params(cfg.prepare)}  # includes the feature code's version
    flat = {k: v for k, v in _flatten(tree).items()
            if not any(k == s or k.startswith(s + ".") for s in skip)}
    flat["_upstream"] = {s: upstream[s] for s in UPSTREAM[step] if s in upstream}
    flat["_step"] = step
    return hashlib.sha1(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _flatten(tree: Mapping, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, dotted))
        else:
            out[dotted] = value
    return out


@dataclass(frozen=True)
class Step:
    name: str
    outputs: tuple[str, ...]  # relative to the run folder; a reused step gets links to these
    command: tuple[str, ...]  # the `mmdf` subcommand
    forceable: bool  # whether --force redoes it (prepare never: its cache is keyed by its parameters)
    complete: Callable[[Config], bool]
    run: Callable[[Config, bool], object]  # (config, force) -> anything, in this process


def _prepare_complete(cfg: Config) -> bool:
    from mmdf.prepare.cache import cache_root
    from mmdf.prepare.manifest import MANIFEST_FILE

    return (cache_root(cfg) / MANIFEST_FILE).is_file()


def _prepare(cfg: Config, force: bool):
    from mmdf.prepare.runner import prepare_dataset

    return prepare_dataset(cfg)


def _branch_complete(branch: str) -> Callable[[Config], bool]:
    def complete(cfg: Config) -> bool:
        from mmdf.train.trainer import is_complete

        return is_complete(cfg.run_dir / branch, cfg.folds.n_splits)
    return complete


def _train(branch: str) -> Callable[[Config, bool], object]:
    def run(cfg: Config, force: bool):
        from mmdf.train.trainer import train_branch

        return train_branch(cfg, branch, force=force)
    return run


def _stack_complete(cfg: Config) -> bool:
    return (cfg.run_dir / "stack" / "metrics.json").is_file()


def _stack(cfg: Config, force: bool):
    from mmdf.stack.run import run_stack

    return run_stack(cfg, force=force)


STEP = {
    "prepare": Step("prepare", (), ("prepare",), False, _prepare_complete, _prepare),
    "audio": Step("audio", ("audio",), ("train", "audio"), True, _branch_complete("audio"), _train("audio")),
    "visual": Step("visual", ("visual",), ("train", "visual"), True, _branch_complete("visual"), _train("visual")),
    "stack": Step("stack", ("stack", "submission.csv", "report.md"), ("stack",), True, _stack_complete, _stack),
}


def step_metrics(step: str, run_dir: Path) -> dict[str, float] | None:
    """OOF and val AUC / TPR@FPR=1e-3 of a finished step: the chosen stacking method, or the branch."""
    nan = float("nan")
    if step == "stack":
        path = run_dir / "stack" / "metrics.json"
        if not path.is_file():
            return None
        m = json.loads(path.read_text())
        row = next(r for r in m["methods"] if r["method"] == m["chosen"])
        return {"oof_auc": row.get("oof_auc", nan), "oof_tpr": row.get(f"oof_{TPR_KEY}", nan),
                "val_auc": row.get("val_auc", nan), "val_tpr": row.get(f"val_{TPR_KEY}", nan)}
    if step in ("audio", "visual"):
        path = run_dir / step / "metrics.json"
        if not path.is_file():
            return None
        m = json.loads(path.read_text())
        oof, val = m.get("oof") or {}, m.get("val") or {}
        return {"oof_auc": oof.get("auc", nan), "oof_tpr": oof.get(TPR_KEY, nan),
                "val_auc": val.get("auc", nan), "val_tpr": val.get(TPR_KEY, nan)}
    return None
