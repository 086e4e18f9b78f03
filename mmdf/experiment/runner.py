"""Run every variant of an experiment through the pipeline, reusing whatever is already computed.

Layout under ``<runs_dir>/<experiment>/``::

    experiment.yaml          the experiment as resolved (variants expanded)
    <variant>[/seed-<s>]/    one run folder per trial, as `mmdf train`/`mmdf stack` write it
        configs/<step>.yaml  the resolved config each step ran with
        steps.json           per step: fingerprint, state, wall time, peak memory, where computed
        logs/<step>.log      the step's output (when steps run in their own process)
        audio/ visual/ stack/ submission.csv report.md   (links where reused)
    results.csv  summary.csv  summary.md  summary.png

A step is skipped when its record says it finished with the same
fingerprint; it is linked from another trial of the experiment that
finished it with the same fingerprint (so changing only the stacker re-runs
only the stacker); otherwise it runs, resuming an interrupted run of the
same fingerprint and redoing outputs made with another one. Preprocessing
is shared through the feature cache, keyed by its own parameters.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from mmdf.config import save_config, to_dict
from mmdf.errors import MmdfError
from mmdf.experiment.measure import Measured, measure_call, measure_command
from mmdf.experiment.records import RECORDS, read_records, set_record
from mmdf.experiment.spec import Experiment, Trial
from mmdf.experiment.steps import fingerprint, steps
from mmdf.experiment.summary import write_summary
from mmdf.files import atomic_write

log = logging.getLogger(__name__)

COMPUTE = ("run", "resume", "redo")  # the actions that compute a step here


@dataclass
class Action:
    trial: str
    step: str
    fingerprint: str
    what: str  # done | reuse | run | resume | redo
    source: str | None = None  # the trial whose outputs are reused
    reason: str = ""

    def describe(self) -> str:
        if self.what == "done" and self.source:
            return f"done (taken from {self.source})"
        return self.what + (f" from {self.source}" if self.source else f" ({self.reason})" if self.reason else "")


def _finished(record: dict | None, fp: str) -> bool:
    return bool(record) and record.get("fingerprint") == fp and record.get("state") == "done"


def _computed_here(record: dict | None, fp: str) -> bool:
    return _finished(record, fp) and not record.get("reused_from")


# --------------------------------------------------------------------------- planning


def plan(exp: Experiment, trials: list[Trial] | None = None, force: bool = False) -> list[Action]:
    """What running ``trials`` would do, step by step (``mmdf experiment --dry-run`` prints it)."""
    planned: dict[tuple[str, str], str] = {}  # (step, fingerprint) -> trial computing it in this run
    actions = []
    for trial, step, fp in trial_steps(exp, exp.trials if trials is None else trials):
        act = decide(exp, trial, step, fp, force, planned)
        if act.what in COMPUTE:
            planned.setdefault((step, fp), trial.name)
        actions.append(act)
    return actions


def trial_steps(exp: Experiment, trials: list[Trial]):
    """(trial, step, fingerprint) in running order: trials as listed, steps in pipeline order."""
    for trial in trials:
        fps: dict[str, str] = {}
        for step in exp.spec.steps:
            fps[step] = fingerprint(step, trial.configs[step], fps)
            yield trial, step, fps[step]


def decide(exp: Experiment, trial: Trial, step: str, fp: str, force: bool,
           fresh: dict[tuple[str, str], str]) -> Action:
    """The action for one step; ``fresh`` holds what this invocation has computed (or will)."""
    spec, cfg = steps()[step], trial.configs[step]
    forced = force and spec.forceable
    record = read_records(trial.run_dir).get(step)
    if (step, fp) in fresh and fresh[(step, fp)] != trial.name:
        return Action(trial.name, step, fp, "reuse", fresh[(step, fp)])
    if not forced and _finished(record, fp) and spec.complete(cfg) and _source_unchanged(exp, step, record):
        return Action(trial.name, step, fp, "done", record.get("reused_from"))
    if not forced:
        donor = find_donor(exp, trial, step, fp)
        if donor is not None:
            return Action(trial.name, step, fp, "reuse", donor)
    if forced:
        return Action(trial.name, step, fp, "redo", reason="--force")
    if record and record.get("fingerprint") == fp and not record.get("reused_from"):
        return Action(trial.name, step, fp, "resume", reason=f"state {record.get('state')}")
    if record or _has_outputs(trial.run_dir, spec.outputs):
        return Action(trial.name, step, fp, "redo", reason="made with other settings")
    return Action(trial.name, step, fp, "run")


def _source_unchanged(exp: Experiment, step: str, record: dict) -> bool:
    """A linked step is still valid only while its source trial holds the same outputs."""
    source = record.get("reused_from")
    if not source:
        return True
    return _computed_here(read_records(exp.root / source).get(step), record["fingerprint"])


def find_donor(exp: Experiment, trial: Trial, step: str, fp: str) -> str | None:
    """Another trial of the experiment that finished ``step`` with fingerprint ``fp`` itself."""
    for path in sorted(exp.root.glob(f"**/{RECORDS}")):
        run_dir = path.parent
        if run_dir.resolve() == trial.run_dir.resolve():
            continue
        if not _computed_here(read_records(run_dir).get(step), fp):
            continue
        name = run_dir.relative_to(exp.root).as_posix()
        donor_cfg = dataclasses.replace(trial.configs[step], experiment=f"{exp.name}/{name}")
        if steps()[step].complete(donor_cfg):
            return name
    return None


def _has_outputs(run_dir: Path, outputs: tuple[str, ...]) -> bool:
    return any((run_dir / o).exists() or (run_dir / o).is_symlink() for o in outputs)


# --------------------------------------------------------------------------- running


def run_experiment(exp: Experiment, variants: list[str] | None = None, force: bool = False,
                   echo: bool = True) -> Path:
    """Run the trials (all, or those of ``variants``), then write the summary; returns its folder."""
    trials = select(exp, variants)
    exp.root.mkdir(parents=True, exist_ok=True)
    with atomic_write(exp.root / "experiment.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(describe(exp), sort_keys=False))
    handler = logging.FileHandler(exp.root / "experiment.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("mmdf").addHandler(handler)
    try:
        run_trials(exp, trials, force, echo)
    finally:
        logging.getLogger("mmdf").removeHandler(handler)
        handler.close()
    return write_summary(exp)


def run_trials(exp: Experiment, trials: list[Trial], force: bool = False, echo: bool = True) -> list[Action]:
    """Every step of every trial, in order: skipped, reused, resumed or run; returns what was done.

    With ``parallel`` above 1, a trial's branch steps (which read the feature
    cache and nothing of each other) run that many at once, each in its own
    process; prepare before them and the stack after them still run alone.
    """
    fresh: dict[tuple[str, str], str] = {}
    total = len(trials) * len(exp.spec.steps)
    done: list[Action] = []
    for group in _step_groups(exp, trials):
        planned = []
        for trial, step, fp in group:
            act = decide(exp, trial, step, fp, force, fresh)
            log.info("[%d/%d] %s %s: %s", len(done) + len(planned) + 1, total, trial.name or exp.name, step,
                     act.describe())
            if act.what in COMPUTE:
                fresh[(step, fp)] = trial.name
            planned.append((trial, act))
        _execute_group(exp, planned, echo)
        done += [act for _, act in planned]
    return done


def _step_groups(exp: Experiment, trials: list[Trial]):
    """The (trial, step, fingerprint) of :func:`trial_steps` in groups that may run at once: a trial's
    consecutive branch steps when ``parallel`` > 1, every other step alone."""
    group: list = []
    for item in trial_steps(exp, trials):
        trial, step, _ = item
        joins = exp.spec.parallel > 1 and steps()[step].trains and bool(group) and group[-1][0] is trial \
            and steps()[group[-1][1]].trains
        if group and not joins:
            yield group
            group = []
        group.append(item)
    if group:
        yield group


def _execute_group(exp: Experiment, planned: list[tuple[Trial, Action]], echo: bool) -> None:
    """Carry out a group's actions: alone in order, or the computing ones ``parallel`` at a time in processes.

    Running at once, the steps' output goes to their logs only (interleaved
    progress bars would be unreadable); a failure is raised once the others finish.
    """
    computing = [(t, a) for t, a in planned if a.what in COMPUTE]
    if exp.spec.parallel <= 1 or len(computing) <= 1:
        for trial, act in planned:
            execute(exp, trial, act, echo)
        return
    from concurrent.futures import ThreadPoolExecutor

    for trial, act in planned:
        if act.what not in COMPUTE:
            execute(exp, trial, act, echo)
    run_dir = computing[0][0].run_dir
    log.info("running %s at once (%d at a time), each in its own process; output in %s",
             ", ".join(a.step for _, a in computing), exp.spec.parallel, run_dir / "logs")
    with ThreadPoolExecutor(max_workers=exp.spec.parallel) as pool:
        futures = [pool.submit(_execute_logged, exp, t, a) for t, a in computing]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]


def _execute_logged(exp: Experiment, trial: Trial, act: Action) -> None:
    start = time.perf_counter()
    execute(exp, trial, act, echo=False, isolate=True)
    log.info("%s %s: finished in %.0f s", trial.name or exp.name, act.step, time.perf_counter() - start)


def select(exp: Experiment, variants: list[str] | None) -> list[Trial]:
    if not variants:
        return exp.trials
    unknown = sorted(set(variants) - set(exp.variants))
    if unknown:
        raise MmdfError(f"no variant {', '.join(unknown)} in {exp.path}; its variants: {', '.join(exp.variants)}")
    return [t for t in exp.trials if t.variant in variants]


def describe(exp: Experiment) -> dict:
    """The experiment file as run: its keys and the trials they expand to (each step's resolved
    config is saved in the trial's ``configs/`` when the step runs)."""
    return {
        "file": str(exp.path),
        **to_dict(exp.spec),
        "trials": [{"name": t.name, "variant": t.variant, "seed": t.seed} for t in exp.trials],
    }


def execute(exp: Experiment, trial: Trial, act: Action, echo: bool = True, isolate: bool | None = None) -> None:
    """Carry out one planned action and record it in the trial's ``steps.json``.

    ``isolate``: run a computing step in its own process (default: the experiment's ``isolate``).
    """
    run_dir, step = trial.run_dir, act.step
    spec, cfg = steps()[step], trial.configs[step]
    if act.what == "done":
        return
    if act.what == "reuse":
        donor = exp.root / act.source
        for out in spec.outputs:
            _link(donor / out, run_dir / out)
        rec = dict(read_records(donor)[step])
        rec.update(state="done", reused_from=act.source)
        set_record(run_dir, step, rec)
        return

    force = act.what == "redo"
    for out in spec.outputs:  # never compute into another trial's folder through a link
        if (run_dir / out).is_symlink():
            (run_dir / out).unlink()
            force = True
    cfg_file = run_dir / "configs" / f"{step}.yaml"
    save_config(cfg, cfg_file)
    set_record(run_dir, step, {"fingerprint": act.fingerprint, "state": "running", "started_at": time.time()})
    isolate = exp.spec.isolate if isolate is None else isolate
    if isolate:
        argv = [*_launcher(exp, step), "-m", "mmdf", *spec.command, "--config", str(cfg_file)]
        if force and spec.forceable:
            argv.append("--force")
        measured = measure_command(argv, run_dir / "logs" / f"{step}.log", echo=echo)
    else:
        measured = measure_call(lambda: spec.run(cfg, force and spec.forceable))
    if measured.returncode != 0 or not spec.complete(cfg):
        running = read_records(run_dir).get(step, {})  # only this step's thread writes its record
        set_record(run_dir, step, {**running, "state": "failed", "returncode": measured.returncode})
        where = ""
        if isolate:
            log_file = run_dir / "logs" / f"{step}.log"
            where = f"; its output is in {log_file}, ending:\n  {_last_line(log_file)}\n"
        raise MmdfError(f"experiment {exp.name}: step {step} of {trial.name} failed "
                        f"(exit status {measured.returncode}){where}. Fix the cause and run the experiment "
                        "again: finished steps are kept, this one resumes.")
    set_record(run_dir, step, _record(act.fingerprint, measured))


def _record(fp: str, m: Measured) -> dict:
    def mb(value: float):
        return None if value != value else round(value, 1)

    return {"fingerprint": fp, "state": "done", "wall_s": round(m.wall_s, 2), "peak_rss_mb": mb(m.peak_rss_mb),
            "peak_tree_mb": mb(m.peak_tree_mb), "reused_from": None, "finished_at": time.time()}


def _last_line(path: Path) -> str:
    """The last non-empty line of a step's log (its error, for a step that failed)."""
    try:
        lines = path.read_bytes()[-4000:].decode(errors="replace").replace("\r", "\n").splitlines()
    except OSError:
        return ""
    return next((line.strip() for line in reversed(lines) if line.strip()), "")


def _launcher(exp: Experiment, step: str) -> list[str]:
    """The command that starts a step; ``torchrun`` is this Python's, whatever the PATH holds."""
    if steps()[step].trains and exp.spec.launcher:
        words = shlex.split(exp.spec.launcher)
        if words[0] == "torchrun":
            words = [sys.executable, "-m", "torch.distributed.run", *words[1:]]
        return words
    return [sys.executable]


def _link(src: Path, dst: Path) -> None:
    """``dst`` becomes a relative link to ``src`` (a stale ``dst`` of this trial is removed)."""
    if not (src.exists() or src.is_symlink()):
        return  # e.g. no submission where the config names no test list
    if dst.is_symlink() or dst.is_file():
        dst.unlink()
    elif dst.is_dir():
        shutil.rmtree(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(src, dst.parent), dst)
