"""The pipeline's steps as the experiment runner sees them.

For each step: what it reads from the config (its fingerprint: two variants
whose fingerprints agree would compute the same outputs, so the second one
reuses the first one's), which outputs it leaves in the run folder, how to
tell that it finished, how to run it (a library call, or the ``mmdf``
command in a process of its own) and where its AUCs are.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from mmdf.config import to_dict
from mmdf.metrics import TPR_KEY
from mmdf.prepare.cache import cache_root, feature_params
from mmdf.prepare.config import PrepareConfig
from mmdf.prepare.manifest import MANIFEST_FILE
from mmdf.prepare.runner import prepare_dataset
from mmdf.run_config import Config
from mmdf.stack.run import run_stack
from mmdf.train.branches import all_branches
from mmdf.train.config import TrainConfig

SPEED_ONLY = ("train.progress",)  # read by a step, but changes only how fast it runs


def prepare_reads() -> tuple[str, ...]:
    return ("data", "prepare")  # the prepare section as the feature cache's key sees it


def branch_reads(branch) -> tuple[str, ...]:
    """A branch reads its own feature and config sections, the shared settings, and no other branch's."""
    feature_sections = {k for b in all_branches().values() for k in b.prepare_keys}
    shared_prepare = [k for k in feature_params(PrepareConfig()) if k not in feature_sections]
    shared_train = [f.name for f in dataclasses.fields(TrainConfig)]
    return ("seed", "data", "folds", *(f"prepare.{k}" for k in (*shared_prepare, *branch.prepare_keys)),
            *(f"train.{k}" for k in shared_train), f"train.{branch.name}")


def stack_reads() -> tuple[str, ...]:
    return ("seed", "data", "folds", "prepare", "stack")  # prepare: the manifest's metadata


def fingerprint(step: str, cfg: Config, upstream: Mapping[str, str] = {}) -> str:
    """Hash of the config keys ``step`` declares it reads, and of its upstream steps' fingerprints."""
    spec = steps()[step]
    tree = {**to_dict(cfg), "prepare": feature_params(cfg.prepare)}  # includes the feature code's version
    flat = {k: v for k, v in _flatten(tree).items()
            if _under(k, spec.reads) and not _under(k, SPEED_ONLY)}
    flat["_upstream"] = {s: upstream[s] for s in spec.upstream if s in upstream}
    flat["_step"] = step
    return hashlib.sha1(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


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
    trains: bool  # a training step (started by the experiment's launcher, e.g. torchrun)
    reads: tuple[str, ...]  # the config keys (dotted prefixes) it reads: its fingerprint
    upstream: tuple[str, ...]  # steps whose outputs it reads
    complete: Callable[[Config], bool]
    run: Callable[[Config, bool], object]  # (config, force) -> anything, in this process
    metrics_file: str | None  # its metrics.json, relative to the run folder


def _prepare_complete(cfg: Config) -> bool:
    return (cache_root(cfg) / MANIFEST_FILE).is_file()


def _prepare(cfg: Config, force: bool):
    return prepare_dataset(cfg)


def _branch_step(branch) -> Step:
    def complete(cfg: Config) -> bool:
        from mmdf.train.kfold import is_complete  # deferred: torch; the runner starts steps, it never trains

        return is_complete(cfg.run_dir / branch.name, cfg.folds.n_splits)

    def run(cfg: Config, force: bool):
        from mmdf.train.kfold import train_branch  # deferred: torch (see complete)

        return train_branch(cfg, branch, force=force)

    return Step(branch.name, (branch.name,), ("train", branch.name), True, True, branch_reads(branch), (),
                complete, run, f"{branch.name}/metrics.json")


def _stack_complete(cfg: Config) -> bool:
    return (cfg.run_dir / "stack" / "metrics.json").is_file()


def _stack(cfg: Config, force: bool):
    return run_stack(cfg, force=force)


def steps() -> dict[str, Step]:
    """The pipeline's steps in order: prepare, every registered branch, stack."""
    branches = all_branches()
    out = {"prepare": Step("prepare", (), ("prepare",), False, False, prepare_reads(), (),
                           _prepare_complete, _prepare, None)}
    out.update({name: _branch_step(b) for name, b in branches.items()})
    out["stack"] = Step("stack", ("stack", "submission.csv", "report.md", "model_card.md"), ("stack",), True, False,
                        stack_reads(), tuple(branches), _stack_complete, _stack, "stack/metrics.json")
    return out


def step_names() -> tuple[str, ...]:
    return tuple(steps())


def branch_step_names() -> tuple[str, ...]:
    return tuple(name for name, s in steps().items() if s.trains)


def step_metrics(step: str, run_dir: Path) -> dict[str, float] | None:
    """OOF and val AUC / TPR@FPR=1e-3 of a finished step: the chosen stacking method, or the branch."""
    nan = float("nan")
    spec = steps()[step]
    path = run_dir / spec.metrics_file if spec.metrics_file else None
    if path is None or not path.is_file():
        return None
    m = json.loads(path.read_text())
    if step == "stack":
        row = next(r for r in m["methods"] if r["method"] == m["chosen"])
        shifted = row.get("shifted")
        return {"oof_auc": row.get("oof_auc", nan), "oof_tpr": row.get(f"oof_{TPR_KEY}", nan),
                "val_auc": row.get("val_auc", nan), "val_tpr": row.get(f"val_{TPR_KEY}", nan),
                "shifted": nan if shifted is None else float(shifted)}
    oof, val, shift = m.get("oof") or {}, m.get("val") or {}, m.get("shift")
    return {"oof_auc": oof.get("auc", nan), "oof_tpr": oof.get(TPR_KEY, nan),
            "val_auc": val.get("auc", nan), "val_tpr": val.get(TPR_KEY, nan),
            "shifted": nan if shift is None else float(shift["shifted"])}
