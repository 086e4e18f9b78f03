"""Experiment files: a pipeline, a set of variants (small overrides), optional repeated seeds.

An experiment YAML extends a pipeline file (``configs/pipeline.yaml`` names the
config of each step) with ``base:``, like every other config, and adds the
variants to compare::

    base: ../configs/demo/pipeline.yaml
    steps: [prepare, audio]            # what the question needs (default: all four)
    seeds: [0, 1, 2]                   # optional: each variant once per seed
    variants:
      test_efficientnet: {}            # the base as it is
      resnet10t: {train.audio.model.name: resnet10t}
    grid:                              # optional: one variant per value (per combination)
      train.audio.augment.vflip: [0.0, 0.5]

Overrides use dotted or nested keys of the step configs and apply to every
step; ``per_step: {visual: {...}}`` inside a variant (or ``common``) limits
some to one step. :func:`expand` turns the file into :class:`Trial` objects,
one per (variant, seed), each holding the typed :class:`mmdf.run_config.Config`
of every step it runs.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from mmdf.config import build, load_yaml_tree, parse_override
from mmdf.errors import ConfigError
from mmdf.experiment.steps import branch_step_names, step_names
from mmdf.prepare.cache import cache_root
from mmdf.run_config import Config, load_config


def pipeline_steps() -> tuple[str, ...]:
    """prepare, every registered branch, stack."""
    return step_names()


def metric_steps() -> tuple[str, ...]:
    """Steps with AUCs; the default metric is the first of these that runs (the stack, else the last branch)."""
    return ("stack", *reversed(branch_step_names()))

PER_STEP = "per_step"
BASELINE = "base"  # the variant name when a file lists none
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+,-]*$")


@dataclass
class ExperimentConfig:
    """The keys of an experiment file (after its bases are merged)."""

    name: str | None = None  # outputs under <runs_dir>/<name>/; default: the file's stem
    configs: dict[str, str] = field(default_factory=dict)  # step -> config YAML, relative to the file naming it
    steps: list[str] = field(default_factory=lambda: list(pipeline_steps()))  # steps to run, in pipeline order
    metric: str | None = None  # step whose AUC the summary compares; default: stack, else visual, else audio
    seeds: list[int] = field(default_factory=list)  # empty: one run per variant with the configs' own seed
    seed_keys: list[str] = field(default_factory=lambda: ["seed"])  # keys each seed sets (e.g. also folds.seed)
    common: dict[str, Any] = field(default_factory=dict)  # overrides for every variant
    variants: dict[str, Any] = field(default_factory=dict)  # name -> overrides
    grid: dict[str, list] = field(default_factory=dict)  # key -> values: one variant per combination
    isolate: bool = True  # every step in its own process: peak memory per step, torchrun for training
    launcher: str | None = None  # how training steps start, e.g. "torchrun --nproc_per_node 4"
    # Branch steps of a trial run this many at once, each in its own process (its output then goes to
    # <run>/logs/<step>.log only). Worth it where one step leaves cores idle (train.threads, a small GPU job).
    parallel: int = 1

    def __post_init__(self) -> None:
        all_steps, metrics = pipeline_steps(), metric_steps()
        unknown = [s for s in self.steps if s not in all_steps]
        if unknown:
            raise ValueError(f"steps {unknown} unknown; the pipeline's steps are {', '.join(all_steps)}")
        self.steps = [s for s in all_steps if s in self.steps]  # pipeline order, whatever the file's
        if not self.steps:
            raise ValueError("steps is empty: name at least one of " + ", ".join(all_steps))
        if self.metric is None:
            self.metric = next((s for s in metrics if s in self.steps), None)
        if self.metric not in metrics or self.metric not in self.steps:
            raise ValueError(f"metric must be one of the steps run among {', '.join(metrics)}; "
                             f"got {self.metric!r} with steps {self.steps}")
        if self.parallel < 1:
            raise ValueError(f"parallel must be at least 1 (steps at once), got {self.parallel}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds repeat a value: {self.seeds}")
        for key, values in self.grid.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"grid.{key} must be a non-empty list of values, got {values!r}")


@dataclass
class Trial:
    """One variant with one seed: its run folder's name and the config of every step."""

    variant: str
    seed: int | None
    name: str  # <variant> or <variant>/seed-<seed>; the run folder under runs/<experiment>/
    configs: dict[str, Config]

    @property
    def run_dir(self) -> Path:
        return next(iter(self.configs.values())).run_dir


@dataclass
class Experiment:
    name: str
    path: Path
    spec: ExperimentConfig
    trials: list[Trial]
    runs_dir: Path

    @property
    def root(self) -> Path:
        return self.runs_dir / self.name

    @property
    def variants(self) -> list[str]:
        return list(dict.fromkeys(t.variant for t in self.trials))


def load_experiment(path: str | Path, overrides: list[str] = ()) -> Experiment:
    """Read an experiment file; ``overrides`` (key=value) apply to every step of every variant."""
    path = Path(path)
    tree, sources = load_yaml_tree(path)
    spec = build(ExperimentConfig, tree, sources)
    if "steps" not in tree:  # default: every step the pipeline file names a config for
        spec.steps = [s for s in pipeline_steps() if s in spec.configs]
    name = spec.name or path.stem
    if not _NAME.match(name):
        raise ConfigError(f"{path}: experiment name {name!r} must be letters, digits and _.=+,- only")
    missing = [s for s in spec.steps if s not in spec.configs]
    if missing:
        raise ConfigError(f"{path}: no config for step(s) {', '.join(missing)}; name them under `configs:` "
                          "(or extend a pipeline file such as configs/pipeline.yaml)")
    files = {step: _relative_to_source(spec.configs[step], sources.get(f"configs.{step}")) for step in spec.steps}
    for o in overrides:
        parse_override(o)  # a malformed one fails before any config is read
    trials = expand(name, spec, files, list(overrides), where=str(path))
    for trial in trials:
        check_trial(trial, where=f"{path}, variant {trial.variant}")
        check_stack_branches(spec, trial, where=f"{path}, variant {trial.variant}")
    runs_dirs = {str(c.runs_dir) for t in trials for c in t.configs.values()}
    if len(runs_dirs) != 1:
        raise ConfigError(f"{path}: the step configs name different runs_dir values ({sorted(runs_dirs)}); "
                          "an experiment keeps its runs in one folder")
    return Experiment(name, path, spec, trials, Path(runs_dirs.pop()))


def load_pipeline(path: str | Path, overrides: list[str] = ()) -> Experiment:
    """A pipeline file (``configs: {step: file}``) as an experiment of one trial, run in place.

    The trial's run folder is the configs' own ``runs/<experiment>/`` (no
    variant folder), and its steps run in this process: this is how ``mmdf
    demo`` runs the pipeline with the experiment runner's step machinery.
    """
    path = Path(path)
    tree, sources = load_yaml_tree(path)
    spec = build(ExperimentConfig, {**tree, "isolate": False}, sources)
    spec.steps = [s for s in pipeline_steps() if s in spec.configs]
    files = {step: _relative_to_source(spec.configs[step], sources.get(f"configs.{step}")) for step in spec.steps}
    configs = {step: load_config(files[step], list(overrides)) for step in spec.steps}
    trial = Trial(BASELINE, None, "", configs)
    check_trial(trial, where=str(path))
    check_stack_branches(spec, trial, where=str(path))
    run_dirs = {str(c.run_dir) for c in configs.values()}
    if len(run_dirs) != 1:
        raise ConfigError(f"{path}: the step configs name different run folders ({sorted(run_dirs)}); "
                          "a pipeline runs into one (set the same experiment in each)")
    cfg = next(iter(configs.values()))
    return Experiment(cfg.experiment, path, spec, [trial], Path(cfg.runs_dir))


def check_trial(trial: Trial, where: str) -> None:
    """Steps that hand over to each other must agree: same features, branches present for the stacker."""
    cfgs = trial.configs
    if "prepare" in cfgs:
        made = cache_root(cfgs["prepare"])
        for step, cfg in cfgs.items():
            if cache_root(cfg) != made or cfg.data != cfgs["prepare"].data:
                raise ConfigError(
                    f"{where}: the {step} step reads features from {cache_root(cfg)} but the prepare step "
                    f"makes {made}; set data and prepare keys for every step, not in per_step.{step}")


def check_stack_branches(spec: ExperimentConfig, trial: Trial, where: str) -> None:
    """A stack of the run's branches needs every branch the pipeline configures to run too."""
    stack = trial.configs.get("stack")
    if stack is None or stack.stack.branches:
        return
    absent = [b for b in branch_step_names() if b in spec.configs and b not in trial.configs]
    if absent or not any(b in trial.configs for b in branch_step_names()):
        raise ConfigError(f"{where}: the stack step stacks the branches of the run, but step(s) "
                          f"{', '.join(absent or branch_step_names())} are not in `steps`; add them, or name "
                          "the branch folders in stack.branches")


def _relative_to_source(file: str, source: str | None) -> Path:
    """A config path as the file that named it meant it (relative to that file's folder)."""
    p = Path(file)
    if p.is_absolute() or source is None or source.startswith("command-line"):
        return p
    return Path(source).parent / p


def variant_overrides(spec: ExperimentConfig) -> dict[str, dict]:
    """Variant name -> its overrides: the listed variants times the grid's combinations."""
    listed = {str(k): (v or {}) for k, v in spec.variants.items()} or {BASELINE: {}}
    for name, value in listed.items():
        if not isinstance(value, Mapping):
            raise ConfigError(f"variant {name!r} must be a mapping of overrides, got {value!r}")
    if not spec.grid:
        points = {"": {}}
    else:
        keys = list(spec.grid)
        leaves = [k.rsplit(".", 1)[-1] for k in keys]
        labels = [leaf if leaves.count(leaf) == 1 else k for k, leaf in zip(keys, leaves)]
        points = {
            ",".join(f"{label}={_fmt(v)}" for label, v in zip(labels, combo)): dict(zip(keys, combo))
            for combo in itertools.product(*(spec.grid[k] for k in keys))
        }
    out = {}
    for (vname, vover), (gname, gover) in itertools.product(listed.items(), points.items()):
        if gname and not spec.variants:
            name = gname
        else:
            name = ",".join(p for p in (vname, gname) if p)
        if not _NAME.match(name):
            raise ConfigError(f"variant name {name!r} must be letters, digits and _.=+,- only "
                              "(it names a folder)")
        out[name] = {**vover, **gover}
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(map(_fmt, value))
    return str(value)


def expand(name: str, spec: ExperimentConfig, files: Mapping[str, Path], overrides: list[str],
           where: str) -> list[Trial]:
    """Every (variant, seed) with the typed config of each step it runs."""
    trials = []
    seeds: list[int | None] = list(spec.seeds) or [None]
    for variant, vover in variant_overrides(spec).items():
        for seed in seeds:
            trial_name = variant if seed is None else f"{variant}/seed-{seed}"
            configs = {step: load_config(files[step], overrides,
                                         updates=_trial_updates(spec, step, variant, vover, seed, name, where))
                       for step in spec.steps}
            trials.append(Trial(variant, seed, trial_name, configs))
    return trials


def _trial_updates(spec: ExperimentConfig, step: str, variant: str, vover: Mapping, seed: int | None,
                   name: str, where: str) -> list[tuple[Mapping, str]]:
    """What a trial merges over a step's config file: common, the variant, its seed, its run folder."""
    updates = [*_scoped(spec.common, step, f"{where}, common"), *_scoped(vover, step, f"{where}, variant {variant}")]
    if seed is not None:
        updates.append(({k: seed for k in spec.seed_keys}, f"{where}, seed {seed}"))
    trial_name = variant if seed is None else f"{variant}/seed-{seed}"
    updates.append(({"experiment": f"{name}/{trial_name}"}, f"{where} (run folder)"))
    return updates


def _scoped(overrides: Mapping, step: str, where: str) -> list[tuple[Mapping, str]]:
    """The overrides for every step, then those of ``per_step[step]``."""
    overrides = dict(overrides)
    per_step = overrides.pop(PER_STEP, None) or {}
    if not isinstance(per_step, Mapping) or any(s not in pipeline_steps() for s in per_step):
        raise ConfigError(f"{where}: {PER_STEP} must map step names ({', '.join(pipeline_steps())}) to overrides, "
                          f"got {per_step!r}")
    out = [(overrides, where)] if overrides else []
    if per_step.get(step):
        out.append((per_step[step], f"{where}, {PER_STEP}.{step}"))
    return out
