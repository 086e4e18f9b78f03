"""The shortcut guard: metadata that gives the label away is reported in words, in the log and the report."""

from __future__ import annotations

import json
import logging

import numpy as np
from stack_factory import make_stack_inputs

from mmdf.stack.run import run_stack


def test_duration_that_follows_the_label_is_reported(tmp_path, caplog):
    cfg, manifest = make_stack_inputs(tmp_path)
    fake = manifest["target"].fillna(0).astype(int).to_numpy() == 1
    rng = np.random.default_rng(0)
    manifest["duration"] = np.where(fake, rng.uniform(5, 6, len(manifest)), rng.uniform(3, 5.2, len(manifest)))
    with caplog.at_level(logging.WARNING, logger="mmdf.stack.shortcuts"):
        stack_dir = run_stack(cfg, manifest=manifest)
    shortcuts = json.loads((stack_dir / "metrics.json").read_text())["shortcuts"]
    assert shortcuts["cues"]["duration"] > 0.9 and shortcuts["model_auc"] > 0.65
    assert any("`duration` alone separates fake from real" in w for w in shortcuts["warnings"])
    assert "duration" in caplog.text and "stack.use_metadata=false" in caplog.text
    report = (cfg.run_dir / "report.md").read_text()
    assert "**Warning:**" in report and "`duration` alone" in report


def test_uninformative_metadata_raises_no_warning(tmp_path):
    cfg, manifest = make_stack_inputs(tmp_path)
    stack_dir = run_stack(cfg, manifest=manifest)
    shortcuts = json.loads((stack_dir / "metrics.json").read_text())["shortcuts"]
    assert shortcuts["model_auc"] < 0.65 and not shortcuts["warnings"], shortcuts
    assert "No metadata cue reaches AUC 0.65." in (cfg.run_dir / "report.md").read_text()
