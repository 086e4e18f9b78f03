"""`mmdf audit` end to end through the real `mmdf predict` route, on a tiny trained demo run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from demo_factory import DEMO_SHRINK, TINY_DEMO_SIZES
from mmdf.cli import main
from mmdf.pipeline.demo import run_demo


@pytest.fixture(scope="module")
def demo_run(tiny_demo):
    overrides = [f"data.root={tiny_demo / 'data'}", f"data.cache_dir={tiny_demo / 'cache'}",
                 f"runs_dir={tiny_demo / 'runs'}", *DEMO_SHRINK]
    return run_demo(overrides, **TINY_DEMO_SIZES)


@pytest.mark.slow
def test_audit_cli_scores_perturbed_clips_through_predict(demo_run, capsys):
    argv = ["audit", "--run", str(demo_run), "--perturb", "crf40,audio_8k,lead_silence_1s", "--max-clips", "8",
            "--workers", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "audit finished" in out and "audit.md" in out
    table = pd.read_csv(demo_run / "audit" / "audit.csv")
    assert table["perturbation"].unique().tolist() == ["none", "crf40", "audio_8k", "lead_silence_1s"]
    assert {"final", "audio", "visual"} <= set(table["score"])
    final = table[table["score"] == "final"].set_index("perturbation")
    assert (final["n_clips"] == 8).all() and (final["n_failed"] == 0).all()
    assert final.loc["none", "d_auc"] == 0 and np.isfinite(final["auc"]).all()
    # the perturbed copies were really scored: their branch scores moved
    base = pd.read_csv(demo_run / "audit" / "cache" / "none" / "val" / "scores.csv")
    low = pd.read_csv(demo_run / "audit" / "cache" / "audio_8k" / "val" / "scores.csv")
    moved = base.merge(low, on="video_name")
    assert (moved["audio_prob_x"] - moved["audio_prob_y"]).abs().max() > 0  # a 1-epoch model: small moves
    # video copied: its faces are the unperturbed clip's (shared, not made again), so is the score
    np.testing.assert_array_equal(moved["visual_prob_x"], moved["visual_prob_y"])
    assert "audit/audit.md" in (demo_run / "report.md").read_text()
    from mmdf.run_config import load_config
    from mmdf.stack.run import run_stack

    run_stack(load_config(demo_run / "stack" / "config.yaml"), force=True)  # rewrites report.md
    report = (demo_run / "report.md").read_text()
    assert "audit/audit.md" in report and "made before the run's latest stack" in report
