"""Experiments: variant expansion and override merging, step fingerprints, reuse of finished
steps (with stand-in steps that count their runs), and the summary on tiny inputs."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mmdf.errors import ConfigError, MmdfError
from mmdf.stack.config import LightGBMParams
from mmdf.experiment import runner as runner_mod
from mmdf.experiment.records import read_records
from mmdf.experiment.runner import plan, run_experiment
from mmdf.experiment.spec import load_experiment
from mmdf.experiment.steps import Step, fingerprint, steps as pipeline_steps
from mmdf.experiment.summary import collect_results, summarize, write_summary

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False) if not isinstance(data, str) else data)
    return path


@pytest.fixture
def pipeline(tmp_path) -> Path:
    """A pipeline file over the demo step configs, with outputs kept under tmp_path."""
    common = {"runs_dir": str(tmp_path / "runs"), "data": {"cache_dir": str(tmp_path / "cache")}}
    for step in ("data", "audio", "visual", "stack"):
        write(tmp_path / "cfg" / f"{step}.yaml", {"base": str(REPO / "configs/demo" / f"{step}.yaml"), **common})
    return write(tmp_path / "cfg" / "pipeline.yaml", {"configs": {
        "prepare": "data.yaml", "audio": "audio.yaml", "visual": "visual.yaml", "stack": "stack.yaml"}})


def experiment(tmp_path, pipeline, body: dict, name: str = "abl") -> Path:
    return write(tmp_path / "exp" / f"{name}.yaml", {"base": str(pipeline), **body})


# --------------------------------------------------------------------------- expansion


def test_variants_dotted_and_nested_keys_per_step_and_seeds(tmp_path, pipeline):
    path = experiment(tmp_path, pipeline, {
        "seeds": [1, 2],
        "common": {"train.epochs": 2},
        "variants": {
            "plain": None,
            "b0": {"train": {"audio": {"model": {"name": "efficientnet_b0"}}}, "stack.method": "mean"},
            "short_visual": {"per_step": {"visual": {"train.epochs": 1}}},
        },
    })
    exp = load_experiment(path, ["train.batch_size=8"])
    assert exp.name == "abl" and exp.variants == ["plain", "b0", "short_visual"]
    assert [t.name for t in exp.trials][:2] == ["plain/seed-1", "plain/seed-2"]
    by = {t.name: t for t in exp.trials}
    b0 = by["b0/seed-2"].configs
    assert b0["audio"].train.audio.model.name == "efficientnet_b0"
    assert b0["audio"].train.audio.model.pretrained is False  # the rest of the demo config is kept
    assert b0["stack"].stack.method == "mean" and b0["stack"].stack.lightgbm == LightGBMParams()
    assert b0["audio"].seed == 2 and b0["audio"].folds.seed == 42  # seeds set `seed` only by default
    assert b0["audio"].experiment == "abl/b0/seed-2"
    assert b0["audio"].run_dir == tmp_path / "runs" / "abl" / "b0" / "seed-2"
    assert all(c.train.epochs == 2 and c.train.batch_size == 8 for c in b0.values())  # common, then CLI
    sv = by["short_visual/seed-1"].configs
    assert (sv["visual"].train.epochs, sv["audio"].train.epochs) == (1, 2)


def test_grid_expands_to_named_combinations(tmp_path, pipeline):
    path = experiment(tmp_path, pipeline, {
        "steps": ["prepare", "visual"],
        "grid": {"prepare.faces.num_frames": [4, 8], "train.visual.aggregate": ["mean", "topk"]},
    })
    exp = load_experiment(path)
    assert exp.variants == ["num_frames=4,aggregate=mean", "num_frames=4,aggregate=topk",
                            "num_frames=8,aggregate=mean", "num_frames=8,aggregate=topk"]
    t = exp.trials[3]
    assert set(t.configs) == {"prepare", "visual"}
    assert t.configs["prepare"].prepare.faces.num_frames == 8 == t.configs["visual"].prepare.faces.num_frames
    assert exp.spec.metric == "visual"


def test_variants_times_grid(tmp_path, pipeline):
    path = experiment(tmp_path, pipeline, {
        "variants": {"a": {}, "b": {"seed": 3}}, "grid": {"stack.method": ["mean", "lightgbm"]}})
    assert load_experiment(path).variants == ["a,method=mean", "a,method=lightgbm",
                                              "b,method=mean", "b,method=lightgbm"]


@pytest.mark.parametrize("body, match", [
    ({"variants": {"bad": {"train.audio.modle.name": "x"}}}, r"unknown config key 'train.audio.modle'.*variant bad"),
    ({"variants": {"bad": {"train.epochs": "many"}}}, r"train.epochs.*variant bad"),
    ({"steps": ["audio", "fuse"]}, r"steps \['fuse'\] unknown"),
    ({"variants": {"a b": {}}}, r"variant name 'a b'"),
    ({"variants": {"x": {"per_step": {"train": {}}}}}, r"per_step must map step names"),
    ({"steps": ["prepare", "audio"], "metric": "stack"}, r"metric must be one of the steps run"),
    ({"variants": {"m": {"per_step": {"audio": {"prepare.mel.n_mels": 64}}}}},
     r"variant m: the audio step reads features from .*prep-\w+ but the prepare step makes"),
    ({"steps": ["audio", "stack"]}, r"step\(s\) visual are not in `steps`"),
])
def test_bad_experiment_files_name_the_problem(tmp_path, pipeline, body, match):
    with pytest.raises(ConfigError, match=match):
        load_experiment(experiment(tmp_path, pipeline, body))


def test_missing_step_config_is_reported(tmp_path):
    path = write(tmp_path / "e.yaml", {"configs": {"audio": "nowhere.yaml"}, "steps": ["audio"]})
    with pytest.raises(ConfigError, match="config file not found: .*nowhere.yaml"):
        load_experiment(path)
    path = write(tmp_path / "f.yaml", {"steps": ["audio"]})
    with pytest.raises(ConfigError, match="no config for step"):
        load_experiment(path)


@pytest.mark.parametrize("path", sorted(p.relative_to(REPO) for p in (REPO / "experiments").rglob("*.yaml")))
def test_every_shipped_experiment_expands(path):
    exp = load_experiment(REPO / path)
    assert len(exp.variants) >= 2
    for trial in exp.trials:
        assert set(trial.configs) == set(exp.spec.steps)
    # each variant differs from the others in a step the experiment runs (or it compares nothing)
    last = exp.spec.steps[-1]
    fps = {t.name: _fingerprints(exp, t)[last] for t in exp.trials}
    assert len(set(fps.values())) == len(fps)
    if "demo" in path.parts:
        assert all(str(c.data.root) == "data/demo" for t in exp.trials for c in t.configs.values())


def test_demo_backbone_ablation_compares_the_named_backbones():
    exp = load_experiment(REPO / "experiments/demo/audio_backbone.yaml")
    assert {t.variant: t.configs["audio"].train.audio.model.name for t in exp.trials} == {
        "efficientnet_b1": "efficientnet_b1", "efficientnet_b0": "efficientnet_b0"}
    assert all(not t.configs["audio"].train.audio.model.pretrained for t in exp.trials)  # offline on CPU
    assert exp.root == Path("runs/demo_audio_backbone")


def _fingerprints(exp, trial) -> dict[str, str]:
    fps: dict[str, str] = {}
    for step in exp.spec.steps:
        fps[step] = fingerprint(step, trial.configs[step], fps)
    return fps


def test_fingerprints_follow_what_each_step_reads(tmp_path, pipeline):
    path = experiment(tmp_path, pipeline, {"variants": {
        "base": {},
        "stacker": {"stack.method": "mean"},
        "audio_model": {"train.audio.model.name": "mobilenetv3_small_050"},
        "mels": {"prepare.mel.n_mels": 64},
        "speed_only": {"prepare.workers": 1, "train.progress": False, "prepare.faces.batch_size": 4},
        "loop": {"train.epochs": 3},
    }})
    exp = load_experiment(path)
    fp = {t.variant: _fingerprints(exp, t) for t in exp.trials}
    changed = {v: {s for s in fp[v] if fp[v][s] != fp["base"][s]} for v in fp}
    assert changed == {
        "base": set(),
        "stacker": {"stack"},
        "audio_model": {"audio", "stack"},
        "mels": {"prepare", "audio", "stack"},
        "speed_only": set(),
        "loop": {"audio", "visual", "stack"},
    }


# --------------------------------------------------------------------------- reuse (stand-in steps)


class Counter:
    """Stand-in steps: each writes outputs and a metrics.json, and counts its runs."""

    def __init__(self):
        self.calls: list[tuple[str, str, bool]] = []

    def steps(self) -> dict[str, Step]:
        return {name: dataclasses.replace(step, complete=self._complete(name), run=self._run(name))
                for name, step in pipeline_steps().items()}

    def _marker(self, name, cfg) -> Path:
        if name == "prepare":
            from mmdf.prepare.cache import cache_root
            return cache_root(cfg) / "manifest.parquet"
        return cfg.run_dir / name / "metrics.json"

    def _complete(self, name):
        return lambda cfg: self._marker(name, cfg).is_file()

    def _run(self, name):
        def run(cfg, force):
            self.calls.append((name, cfg.experiment, force))
            marker = self._marker(name, cfg)
            marker.parent.mkdir(parents=True, exist_ok=True)
            if name == "stack":
                score = {"mean": 0.9, "lightgbm": 0.8}.get(cfg.stack.method, 0.7)
                m = {"chosen": cfg.stack.method, "methods": [{"method": cfg.stack.method, "oof_auc": score,
                     "oof_tpr@fpr=0.001": 0.1, "val_auc": score + 0.01, "val_tpr@fpr=0.001": 0.2}]}
                (cfg.run_dir / "submission.csv").write_text("video_name,y_pred\n")
            else:
                m = {"oof": {"auc": 0.5 + cfg.seed / 100 + cfg.train.epochs / 1000, "tpr@fpr=0.001": 0.0},
                     "val": {"auc": 0.6}}
            marker.write_text(json.dumps(m))
        return run


@pytest.fixture
def counted(monkeypatch):
    counter = Counter()
    counter.table = counter.steps()
    monkeypatch.setattr(runner_mod, "steps", lambda: counter.table)
    return counter


def runs(counter, step=None):
    return [c for c in counter.calls if step is None or c[0] == step]


def test_reuse_of_finished_steps(tmp_path, pipeline, counted):
    body = {"isolate": False, "grid": {"stack.method": ["mean", "lightgbm"]}}
    path = experiment(tmp_path, pipeline, body)
    exp = load_experiment(path)
    assert [a.what for a in plan(exp)] == ["run", "run", "run", "run", "reuse", "reuse", "reuse", "run"]
    run_experiment(exp, echo=False)
    assert [c[0] for c in counted.calls] == ["prepare", "audio", "visual", "stack", "stack"]
    second = exp.root / "method=lightgbm"
    assert (second / "audio").is_symlink()
    assert (second / "audio").resolve() == (exp.root / "method=mean" / "audio").resolve()
    assert not (second / "stack").is_symlink()
    assert read_records(second)["audio"]["reused_from"] == "method=mean"

    # a second run reuses everything
    counted.calls.clear()
    run_experiment(load_experiment(path), echo=False)
    assert counted.calls == []

    # changing only the stacker re-runs only the stacker (and only where it changed)
    body["grid"]["stack.method"] = ["mean", "rank_mean"]
    body["variants"] = {}
    write(path, {"base": str(pipeline), **body})
    run_experiment(load_experiment(path), echo=False)
    assert [(c[0], c[1]) for c in counted.calls] == [("stack", "abl/method=rank_mean")]

    # a changed branch config is redone in place, never through the link into another trial
    counted.calls.clear()
    exp = load_experiment(path, ["train.epochs=2"])
    run_experiment(exp, echo=False)
    assert [c[0] for c in counted.calls] == ["audio", "visual", "stack", "stack"]
    assert all(force for _, _, force in counted.calls)  # outputs made with other settings are redone
    assert (exp.root / "method=rank_mean" / "audio").is_symlink()  # re-linked to the new outputs


def test_interrupted_step_resumes_and_lost_source_is_recomputed(tmp_path, pipeline, counted):
    path = experiment(tmp_path, pipeline, {"isolate": False, "steps": ["prepare", "audio", "stack"],
                                           "grid": {"stack.method": ["mean", "lightgbm"]},
                                           "configs": {"stack": str(_audio_only_stack(tmp_path))}})
    exp = load_experiment(path)
    first, second = exp.trials
    original = counted.steps()["audio"].run

    def crash(cfg, force):
        raise KeyboardInterrupt

    counted.table["audio"] = dataclasses.replace(counted.table["audio"], run=crash)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(exp, echo=False)
    assert read_records(first.run_dir)["audio"]["state"] == "running"
    counted.table["audio"] = dataclasses.replace(counted.table["audio"], run=original)
    assert [a.what for a in plan(exp)][:2] == ["done", "resume"]
    run_experiment(exp, echo=False)
    assert ("audio", "abl/method=mean", False) in counted.calls  # resumed, not forced

    # the trial that computed the branch is deleted: the one that linked it computes it again
    import shutil
    shutil.rmtree(first.run_dir)
    counted.calls.clear()
    run_experiment(load_experiment(path), variants=["method=lightgbm"], echo=False)
    assert counted.calls == [("prepare", "abl/method=lightgbm", False),  # a no-op over a full cache
                             ("audio", "abl/method=lightgbm", True)]
    assert not (second.run_dir / "audio").is_symlink()


def _audio_only_stack(tmp_path) -> Path:
    return write(tmp_path / "cfg" / "stack_audio.yaml", {
        "base": "stack.yaml", "stack": {"branches": {"audio": "unused"}}})


def test_failed_step_stops_with_a_clear_error(tmp_path, pipeline, counted):
    path = experiment(tmp_path, pipeline, {"isolate": False, "steps": ["prepare", "audio"]})
    counted.table["audio"] = dataclasses.replace(counted.table["audio"], run=lambda cfg, force: None)
    with pytest.raises(MmdfError, match="step audio of base failed.*run the experiment again"):
        run_experiment(load_experiment(path), echo=False)
    assert read_records(load_experiment(path).trials[0].run_dir)["audio"]["state"] == "failed"


def test_parallel_branch_steps_run_at_once_and_a_failure_waits_for_the_others(tmp_path, pipeline, monkeypatch):
    """With ``parallel: 2`` the two branch steps of a trial run at the same time (a barrier only two
    steps running at once pass), prepare and stack alone; one failing is raised after the other finished."""
    import threading

    exp = load_experiment(experiment(tmp_path, pipeline, {"parallel": 2}))
    groups = [[step for _, step, _ in g] for g in runner_mod._step_groups(exp, exp.trials)]
    assert groups == [["prepare"], ["audio", "visual"], ["stack"]]
    barrier, finished, seen = threading.Barrier(2, timeout=20), [], []

    def fake(exp_, trial, act, echo=True, isolate=None):
        seen.append((act.step, isolate))
        if act.step in ("audio", "visual"):
            barrier.wait()  # raises BrokenBarrierError unless both are running
        if act.step == "audio":
            raise MmdfError("audio broke")
        finished.append(act.step)

    monkeypatch.setattr(runner_mod, "execute", fake)
    with pytest.raises(MmdfError, match="audio broke"):
        runner_mod.run_trials(exp, exp.trials, echo=False)
    assert finished == ["prepare", "visual"]  # the stack never started; visual was let finish
    assert ("visual", True) in seen and ("prepare", None) in seen  # at once means in their own processes
    with pytest.raises(ConfigError, match="parallel must be at least 1"):
        load_experiment(experiment(tmp_path, pipeline, {"parallel": 0}, name="zero"))


def test_launcher_starts_training_steps_only(tmp_path, pipeline):
    import sys

    exp = load_experiment(experiment(tmp_path, pipeline, {"launcher": "torchrun --nproc_per_node 4"}))
    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    assert runner_mod._launcher(exp, "audio") == [*torchrun, "--nproc_per_node", "4"]
    assert runner_mod._launcher(exp, "stack") == [sys.executable]


def test_unknown_variant_selection(tmp_path, pipeline):
    exp = load_experiment(experiment(tmp_path, pipeline, {"grid": {"stack.method": ["mean", "lightgbm"]}}))
    with pytest.raises(MmdfError, match="no variant nope.*method=mean, method=lightgbm"):
        run_experiment(exp, variants=["nope"], echo=False)


# --------------------------------------------------------------------------- summary


def test_summary_means_and_spreads_over_seeds(tmp_path, pipeline, counted):
    path = experiment(tmp_path, pipeline, {"isolate": False, "steps": ["prepare", "audio"], "seeds": [0, 2, 4],
                                           "variants": {"a": {}, "b": {"train.epochs": 1}}})
    exp = load_experiment(path)
    run_experiment(exp, variants=["a"], echo=False)
    results = collect_results(exp)
    assert results["state"].tolist() == ["done"] * 3 + ["not run"] * 3
    epochs = exp.trials[0].configs["audio"].train.epochs / 1000  # the stand-in step's score: 0.5 + seed/100 + this
    assert results.loc[:2, "audio_oof_auc"].tolist() == pytest.approx([0.5 + epochs, 0.52 + epochs, 0.54 + epochs])
    assert results.loc[:2, "audio_wall_s"].notna().all()
    summary = pd.read_csv(exp.root / "summary.csv")
    a, b = summary.iloc[0], summary.iloc[1]
    assert (a["variant"], a["n_seeds"]) == ("a", 3)
    assert a["oof_auc_mean"] == pytest.approx(0.52 + epochs) and a["oof_auc_std"] == pytest.approx(0.02)
    assert a["val_auc_mean"] == pytest.approx(0.6) and a["val_auc_std"] == pytest.approx(0.0)
    assert b["n_seeds"] == 0 and math.isnan(b["oof_auc_mean"]) and math.isnan(b["delta_oof_auc_mean"])
    md = (exp.root / "summary.md").read_text()
    assert f"{0.52 + epochs:.4f} ± 0.0200" in md and "Not finished: b (seed 0): not run" in md
    assert (exp.root / "summary.png").stat().st_size > 1000

    # b (1 epoch against the demo's) differs from a by the same amount in every seed: a paired
    # difference with no spread, although each variant alone spreads by 0.02 over seeds
    run_experiment(exp, echo=False)
    b = pd.read_csv(exp.root / "summary.csv").iloc[1]
    delta = 0.001 - epochs
    assert b["oof_auc_std"] == pytest.approx(0.02)
    assert b["delta_oof_auc_mean"] == pytest.approx(delta) and b["delta_oof_auc_std"] == pytest.approx(0.0, abs=1e-9)
    assert f"{delta:.4f} ± 0.0000" in (exp.root / "summary.md").read_text()


def test_summary_single_seed_has_no_spread(tmp_path, pipeline, counted):
    path = experiment(tmp_path, pipeline, {"isolate": False, "grid": {"stack.method": ["mean", "lightgbm"]}})
    exp = load_experiment(path)
    run_experiment(exp, echo=False)
    summary = summarize(collect_results(exp), exp.variants)
    assert summary["oof_auc_mean"].tolist() == pytest.approx([0.9, 0.8])
    assert summary["oof_auc_std"].isna().all()
    assert write_summary(exp).read_text().count("| method=") == 2


# --------------------------------------------------------------------------- measuring


def test_measure_command_sees_the_largest_process_and_the_tree(tmp_path):
    import sys

    from mmdf.experiment.measure import measure_call, measure_command

    grandchild = "import time; b = b'x' * (200 * 2**20); time.sleep(2)"
    code = (f"import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', {grandchild!r}]); "
            "b = b'y' * (60 * 2**20); print('child done', flush=True); sys.exit(p.wait() + 3)")
    m = measure_command([sys.executable, "-c", code], tmp_path / "step.log", echo=False)
    assert m.returncode == 3 and m.wall_s > 1.9
    assert "child done" in (tmp_path / "step.log").read_text()
    assert m.peak_rss_mb > 200  # the grandchild, which the child waited for
    assert m.peak_tree_mb > 250  # both at once
    here = measure_call(lambda: b"z" * (120 * 2**20))
    assert here.peak_rss_mb > 120 or math.isnan(here.peak_rss_mb)


# --------------------------------------------------------------------------- end to end


def test_demo_experiment_end_to_end_in_processes(tiny_demo, capsys):
    """The real steps on a tiny demo dataset, each in its own `mmdf` process, through the CLI;
    the branches are trained once for two stackers; a second run changes no file."""
    from demo_factory import DEMO_SHRINK

    from mmdf.cli import main

    path = write(tiny_demo / "exp" / "e2e.yaml", {
        "base": str(REPO / "configs/demo/pipeline.yaml"),
        "grid": {"stack.method": ["mean", "lightgbm"]},
    })
    args = ["experiment", str(path), f"data.root={tiny_demo / 'data'}", f"data.cache_dir={tiny_demo / 'cache'}",
            f"runs_dir={tiny_demo / 'runs'}", *DEMO_SHRINK]
    assert main(args) == 0
    root = tiny_demo / "runs" / "e2e"
    results = pd.read_csv(root / "results.csv")
    assert results["state"].tolist() == ["done", "done"]
    assert results["audio_reused_from"].fillna("").tolist() == ["", "method=mean"]
    for step in ("audio", "visual", "stack"):
        assert (results[f"{step}_wall_s"] > 0).all() and (results[f"{step}_peak_rss_mb"] > 50).all()
        assert (results[f"{step}_peak_tree_mb"] > 50).all()
        assert (root / "method=mean" / "logs" / f"{step}.log").stat().st_size > 0
    summary = pd.read_csv(root / "summary.csv")
    assert summary["variant"].tolist() == ["method=mean", "method=lightgbm"]
    for variant, row in summary.set_index("variant").iterrows():
        stack = json.loads((root / variant / "stack" / "metrics.json").read_text())
        chosen = next(m for m in stack["methods"] if m["method"] == variant.split("=")[1])
        assert row["oof_auc_mean"] == pytest.approx(chosen["oof_auc"])
        assert row["val_tpr_mean"] == pytest.approx(chosen["val_tpr@fpr=0.001"])
    assert (root / "method=lightgbm" / "submission.csv").is_file()
    assert re.search(r"^\| method=mean +\| +1 \|", capsys.readouterr().out, re.M)

    before = {p: p.stat().st_mtime_ns for p in (root / "method=mean").rglob("*") if p.is_file()}
    assert main(args + ["--dry-run"]) == 0
    assert capsys.readouterr().out.count(" done") == 2 * 8  # prepare, 6 branches, stack; 2 variants
    assert main(args) == 0
    after = {p: p.stat().st_mtime_ns for p in (root / "method=mean").rglob("*") if p.is_file()}
    assert after == before
