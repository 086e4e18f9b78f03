"""`mmdf audit` orchestration on a synthetic split whose labels follow the leading silence.

``predict_clips`` is replaced by a stand-in that scores a clip by its leading
silence (a model leaning on the shortcut), so the test is fast and the expected
effects are known: trimming the silence must break it, the probes must warn.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from mmdf.audit.config import AuditConfig, parse_perturbations
from mmdf.audit.media import decode_native_audio
from mmdf.audit.probes import cue_table, probe_aucs, warning_lines
from mmdf.audit.run import run_audit, select_clips
from mmdf.audit.silence import leading_silence
from mmdf.cli import main
from mmdf.errors import MmdfError
from test_audit_perturb import make_av_clip

PERTURB = ["crf40", "audio_8k", "trim_silence", "lead_silence_1s"]


@pytest.fixture(scope="module")
def shortcut_run(tmp_path_factory):
    """A 'run' (its stack/config.yaml only) over 12 val clips: fakes start with 0.6 s of silence."""
    root = tmp_path_factory.mktemp("audit_run")
    clips = root / "data" / "valset"
    lines = ["video_name,target"]
    for i in range(10):
        fake = i % 2
        make_av_clip(clips / f"c{i}.mp4", seconds=1.6, lead=0.6 if fake else 0.0, tail=0.1, size=64, seed=i)
        lines.append(f"c{i}.mp4,{fake}")
    make_av_clip(clips / "mute.mp4", seconds=1.6, audio=False, size=64)
    (clips / "broken.mp4").write_bytes(b"garbage" * 50)
    lines += ["mute.mp4,0", "broken.mp4,1"]
    (root / "data" / "valset_label.txt").write_text("\n".join(lines) + "\n")
    run = root / "runs" / "shortcut"
    (run / "stack").mkdir(parents=True)
    (run / "stack" / "config.yaml").write_text(f"experiment: shortcut\ndata:\n  root: {root / 'data'}\n")
    (run / "stack" / "stacker.json").write_text("{}")
    (run / "report.md").write_text("# Run report: shortcut\n")
    return run


def _leaning_predict(calls):
    """predict_clips stand-in: final and audio score = leading silence; visual = noise."""

    def predict_clips(run_dir, inputs, batch_size=256, workers=None, **_):
        calls.append([str(p) for p in inputs])
        rows = []
        for p in map(str, inputs):
            try:
                signal, rate = decode_native_audio(p)
                lead, status = leading_silence(signal, rate), "ok"
            except Exception:  # noqa: BLE001
                lead, status = np.nan, "no_audio" if p.endswith("mute.mp4") else "corrupt"
            rows.append({"path": p, "video_name": p.rsplit("/", 1)[-1], "prob": 0.5 if np.isnan(lead) else lead,
                         "status": status, "error": "", "n_branches_scored": 1, "audio_prob": lead,
                         "visual_prob": np.random.default_rng(len(p)).random()})
        return pd.DataFrame(rows)

    return predict_clips


def test_audit_finds_the_silence_shortcut_and_resumes(shortcut_run, monkeypatch, caplog):
    calls = []
    monkeypatch.setattr("mmdf.audit.run.predict_clips", _leaning_predict(calls))
    config = AuditConfig(perturbations=PERTURB, progress=False)
    with caplog.at_level(logging.WARNING):
        result = run_audit(shortcut_run, config)
    table = result.table.set_index(["perturbation", "score"])
    assert table.loc[("none", "audio"), "auc"] == pytest.approx(1.0)  # the mute and broken clips tie the final
    assert table.loc[("trim_silence", "final"), "d_auc"] < -0.3  # the shortcut is gone, so is the score
    assert table.loc[("lead_silence_1s", "final"), "d_auc"] == pytest.approx(0.0, abs=0.05)
    # 12 clips: the broken one fails every perturbation, the mute one passes audio ones through
    assert (table.xs("final", level="score")["n_clips"] == 12).all()
    assert table.loc[("crf40", "final"), "n_failed"] == 1 and table.loc[("crf40", "final"), "n_unchanged"] == 0
    assert table.loc[("audio_8k", "final"), "n_unchanged"] == 1
    assert table.loc[("audio_8k", "final"), "n_scored"] == 11
    assert set(table.index.get_level_values("score")) == {"final", "audio", "visual"}
    # the shortcut warning, in the log and in audit.md
    assert any("leading_silence_s" in w for w in result.warnings)
    assert any("shortcut: leading_silence_s" in r.getMessage() for r in caplog.records)
    md = (shortcut_run / "audit" / "audit.md").read_text()
    assert "**Warning**: shortcut: leading_silence_s" in md and "audit.png" in md
    for name in ("audit.csv", "audit.png", "probes.csv", "cache/cues.csv"):
        assert (shortcut_run / "audit" / name).stat().st_size > 0
    assert (shortcut_run / "audit" / "cache" / "crf40" / "val" / "clips" / "c0.mp4").is_file()
    # a second audit reuses every perturbation and links the report once
    n_calls = len(calls)
    again = run_audit(shortcut_run, config)
    assert len(calls) == n_calls
    pd.testing.assert_frame_equal(again.table, result.table)
    assert (shortcut_run / "report.md").read_text().count("audit/audit.md") == 2  # one markdown link


def test_probe_warns_on_a_label_following_cue(shortcut_run):
    clips = pd.read_csv(shortcut_run.parents[1] / "data" / "valset_label.txt")
    paths = [shortcut_run.parents[1] / "data" / "valset" / n for n in clips["video_name"]]
    cues = cue_table(paths, clips["video_name"], progress=False)
    probes = probe_aucs(cues.drop(columns="video_name"), clips["target"]).set_index("cue")
    assert probes.loc["leading_silence_s", "separation"] == pytest.approx(1.0)
    assert probes.loc["leading_silence_s", "direction"] == "higher in fakes"
    assert probes.loc["leading_silence_s", "n"] == 10  # the mute and the broken clip have no value
    assert not probes.loc["resolution", "warning"]  # every clip is 64x64: AUC 0.5
    assert len(warning_lines(probes.reset_index())) >= 1


def test_max_clips_is_a_stratified_seeded_subset():
    clips = pd.DataFrame({"video_name": [f"{i}.mp4" for i in range(40)], "target": [int(i < 10) for i in range(40)],
                          "path": ""})
    a, b = select_clips(clips, 8, seed=0), select_clips(clips, 8, seed=0)
    assert a.equals(b) and len(a) == 8 and a["target"].sum() == 2
    assert select_clips(clips, 100, seed=0) is clips


def test_config_refuses_unknown_names():
    assert parse_perturbations(None)[0] == "crf23" and parse_perturbations("crf40, half_res") == ["crf40", "half_res"]
    with pytest.raises(MmdfError, match="unknown perturbation"):
        AuditConfig(perturbations=["crf99"])
    with pytest.raises(MmdfError, match="unknown split"):
        AuditConfig(split="dev")


def test_cli_names_the_missing_stack(tmp_path, capsys):
    assert main(["audit", "--run", str(tmp_path / "nope")]) == 2
    assert "mmdf stack" in capsys.readouterr().err
