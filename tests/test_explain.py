"""What an analyst sees: pages per clip, segments.csv, reasons that say what happened, faces in 1080p.

A tiny trained run (tests/train_factory.py: synthetic features, tiny models; audio, visual and sync
branches) explains clips that are really decoded and prepared (PyAV-written clips with the
astronaut's face and a tone). The browser test renders a page in headless Chromium where it is
installed (Debian's ``chromium`` package).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from media_factory import make_clip
from train_factory import make_manifest, tiny_config

from mmdf.predict.explain import reasons
from mmdf.predict.predict import predict_clips

PREP = ["prepare.workers=1", "prepare.isolate=false", "prepare.progress=false", "prepare.faces.num_frames=4",
        "prepare.faces.detect_size=128", "prepare.faces.min_face_size=20", "prepare.faces.crop_size=64",
        "prepare.mel.image_size=64"]
SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata"


@pytest.fixture(scope="module")
def explained(tmp_path_factory):
    """A tiny run of three branches, and `mmdf predict --explain` over three clips."""
    from mmdf.stack.run import run_stack
    from mmdf.train.kfold import train_branch

    tmp = tmp_path_factory.mktemp("explain")
    manifest = make_manifest(tmp)
    cfg = tiny_config(tmp, extra=["stack.lightgbm.min_child_samples=2", "train.epochs=1",
                                  f"data.cache_dir={tmp / 'prep'}", *PREP])
    for branch in ("audio", "visual", "sync"):
        train_branch(cfg, branch, manifest=manifest)
    run_stack(cfg, manifest=manifest)
    clips = tmp / "clips"
    clips.mkdir()
    make_clip(clips / "talk.mp4", duration=2.4)
    make_clip(clips / "mute.mp4", duration=2.0, audio=None)
    make_clip(clips / "blank.avi", duration=1.6, audio=None, face=False, size=96)
    out = tmp / "pages"
    scores = predict_clips(cfg.run_dir, [clips], explain=out, cache_dir=tmp / "cache", progress=False)
    return scores.set_index("video_name"), out


def test_a_page_per_scored_clip_with_timeline_faces_and_verdict(explained):
    scores, out = explained
    assert sorted(p.name for p in out.glob("*.html")) == ["index.html", "mute.html", "talk.html"]
    page = (out / "talk.html").read_text()
    for needle in ('id="verdict"', 'id="timeline"', 'id="faces"', 'id="branches"', 'id="lag"'):
        assert needle in page, needle
    assert "http://" not in page and "https://" not in page and "<script" not in page  # self-contained
    index = (out / "index.html").read_text()
    assert all(f'href="{n}.html"' in index for n in ("talk", "mute")) and "blank.avi" in index
    assert scores.loc["talk.mp4", "decision"].upper() in page


def test_segments_csv_has_every_modality_in_time(explained):
    scores, out = explained
    seg = pd.read_csv(out / "segments.csv")
    assert list(seg.columns) == ["video_name", "modality", "start_s", "end_s", "score"]
    talk = seg[seg["video_name"] == "talk.mp4"]
    assert set(talk["modality"]) == {"audio", "visual", "sync"}
    assert (talk["end_s"] > talk["start_s"]).all() and talk["score"].between(0, 1).all()
    assert talk["start_s"].min() >= 0 and talk["end_s"].max() <= 2.4 + 0.05
    visual = talk[talk["modality"] == "visual"]
    assert len(visual) == 4 and visual["start_s"].is_monotonic_increasing  # the 4 sampled frames, in order
    # the audio map spans the clip; a clip without audio has visual parts only
    audio = talk[talk["modality"] == "audio"]
    assert audio["start_s"].min() == pytest.approx(0) and audio["end_s"].max() == pytest.approx(2.4, abs=0.05)
    assert set(seg.loc[seg["video_name"] == "mute.mp4", "modality"]) == {"visual"}
    assert "blank.avi" not in set(seg["video_name"])


def test_reasons_name_every_unusable_modality_and_never_an_absent_pusher(explained):
    scores, _ = explained
    assert scores.loc["blank.avi", "reason"] == "not scored: no audio track; no face in 4 frames"
    mute = scores.loc["mute.mp4", "reason"]
    assert "decided by visual (no audio track)" in mute
    assert "audio pushed" not in mute and "sync pushed" not in mute


def test_reason_says_what_absent_branches_did():
    row = pd.DataFrame([{"score": 0.2, "status": "no_face", "decision": "real", "audio_prob": 0.1,
                         "visual_prob": np.nan, "audio_contrib": -0.2, "visual_contrib": -0.34,
                         "metadata_contrib": 0.05, "audio_status": "ok", "visual_status": "no_face",
                         "frames_sampled": 16}])
    text = reasons(row, ["audio", "visual"], "log-odds", ["audio_status", "visual_status"])[0]
    assert text == ("audio: 0.10, visual: -; decided by audio (no face in 16 frames); audio pushed most "
                    "(-0.20 log-odds); the missing visual moved it -0.34 log-odds")
    short = row.assign(score=np.nan, audio_status="too_short", visual_status="too_short", sync_status="too_short")
    assert reasons(short, ["audio", "visual"], "log-odds", ["audio_status", "visual_status", "sync_status"]) == \
        ["not scored: audio, visual and sync too short"]


def test_time_map_means_to_the_clip_logit():
    import timm
    import torch

    from mmdf.train.models import TimePooled, time_logits

    torch.manual_seed(0)
    x = torch.randn(1, 1, 64, 128)
    for model in (timm.create_model("resnet10t", num_classes=1, in_chans=1),
                  TimePooled(timm.create_model("resnet10t", num_classes=0, global_pool="", in_chans=1), 2, 0.0)):
        cam = time_logits(model, x)
        assert cam is not None and len(cam) == 4  # 128 columns / stride 32
        with torch.no_grad():
            assert cam.mean() == pytest.approx(float(model(x).reshape(-1)[0]), abs=1e-4)


def test_detection_scale_follows_the_frame_and_keeps_small_clips_as_they_were():
    from mmdf.prepare.config import FaceConfig
    from mmdf.prepare.faces import detect_scale

    demo = FaceConfig(num_frames=6, detect_size=128, min_face_size=40, crop_size=128)
    assert detect_scale(256, 256, demo) == (0.5, 40)  # what detect_size alone gave the demo's clips
    assert detect_scale(1080, 1920, demo) == pytest.approx((40 / 108, 40))  # was 128 / 1920: a 100-px face is 6 px
    assert detect_scale(96, 96, demo) == (1.0, 40)
    # the sync half's 480-px frames of a 1080p clip: full size, looking for faces of 108 / 4 = 27 px
    assert detect_scale(480, 270, demo, source=(1920, 1080)) == pytest.approx((1.0, 27))
    full = FaceConfig()
    assert detect_scale(1080, 1920, full) == pytest.approx((640 / 1920, 32))  # the full-size settings as they were
    assert detect_scale(96, 96, full) == (1.0, 32)


@pytest.mark.skipif(not (SHARED / "dfdc_real_lynaeydofd.mp4").is_file(), reason="../shared/realdata absent")
def test_the_demo_settings_find_the_faces_of_1080p_footage(tmp_path):
    """The demo's preprocessing (set up on 256-px clips) on the DFDC clips: faces and mouths found, crops
    of the run's size. Before, detection at 128 px on the longer side called both no_face."""
    from mmdf.run_config import load_config
    from mmdf.prepare import runner
    from mmdf.prepare.cache import cache_root
    from mmdf.prepare.store import load_crops

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "demo" / "data.yaml",
                      [f"data.cache_dir={tmp_path}", "prepare.isolate=false", "prepare.progress=false"])
    names = ["dfdc_real_lynaeydofd.mp4", "dfdc_fake_brtujopkby_portrait.mp4"]  # landscape, and portrait
    rows = runner.prepare_clips([SHARED / n for n in names], cfg, workers=1)
    assert rows["visual_status"].tolist() == ["ok", "ok"] and rows["sync_status"].tolist() == ["ok", "ok"]
    assert (rows["frames_with_face"] >= 5).all()
    file = Path(rows["faces_file"].iloc[1])
    crops = load_crops(file if file.is_absolute() else cache_root(cfg) / file)
    assert crops.shape[1:] == (128, 128, 3)  # the run's crop size


def test_segment_auc_from_labels():
    from mmdf.predict.segments import label_segments, segment_auc

    seg = pd.DataFrame({"video_name": ["a", "a", "b", "b", "c"], "modality": "sync",
                        "start_s": [0, 1, 0, 1, 0], "end_s": [1, 2, 1, 2, 1], "score": [0.9, 0.4, 0.3, 0.2, 0.5]})
    labels = pd.DataFrame({"video_name": ["a", "a", "b"], "modality": "sync", "start_s": [0, 1, 0],
                           "end_s": [1, 2, 2], "fake": [1, 0, 0]})
    assert label_segments(seg, labels).tolist()[:4] == [1, 0, 0, 0] and np.isnan(label_segments(seg, labels)[4])
    auc = segment_auc(seg, labels).iloc[0]
    assert (auc["segments"], auc["fake_segments"], auc["clips"], auc["segment_auc"]) == (4, 1, 2, 1.0)


def test_demo_segment_labels_follow_the_kind():
    from mmdf.demo.plan import plan_dataset
    from mmdf.demo.segments import segment_labels

    specs = plan_dataset(40, 0, 0, seed=3)
    labels = segment_labels(specs).set_index(["video_name", "modality"])["fake"]
    for s in specs:
        if s.kind == "fake_sync":
            assert labels[(s.video_name, "sync")] == 1 and labels[(s.video_name, "visual")] == 0
        if s.kind == "fake_visual" and s.has_face:
            assert labels[(s.video_name, "visual")] == 1 and (s.video_name, "sync") not in labels or \
                labels[(s.video_name, "sync")] == 0
        if s.kind == "real":
            assert not labels.get(s.video_name, pd.Series(dtype=int)).any()


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.skipif(_chromium() is None, reason="no Chromium here (Debian: apt-get install chromium)")
def test_the_page_renders_in_a_real_browser(explained, tmp_path):
    _, out = explained
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=3000",
           f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*cmd, "--dump-dom", (out / "talk.html").as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    assert 'id="verdict"' in dom and 'id="timeline"' in dom and dom.count('<figure class="face') == 4
    shot = tmp_path / "page.png"
    subprocess.run([*cmd, f"--screenshot={shot}", "--window-size=1100,1400", (out / "talk.html").as_uri()],
                   capture_output=True, timeout=120)
    import cv2

    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (1400, 1100)
    assert img.std() > 10  # something is drawn, not a blank page
    index = subprocess.run([*cmd, "--dump-dom", (out / "index.html").as_uri()], capture_output=True, text=True,
                           timeout=120).stdout
    assert index.count("<tr>") == 4  # a header and three clips, after the sorter ran


def test_segment_auc_goes_into_the_run_report_once(tmp_path):
    from mmdf.predict.explainer import SEGMENT_SECTION, report_segment_auc

    assert report_segment_auc(tmp_path, "val", tmp_path / "explain" / "val", pd.DataFrame()) is None  # no report
    (tmp_path / "report.md").write_text("# Run report\n\n## Stacking\n\ntable\n\n## Configs used\n\nyaml\n")
    auc = pd.DataFrame({"modality": ["audio", "sync"], "parts": [10, 12], "auc": [0.91, 0.97]})
    for _ in range(2):  # explaining the split again replaces the section
        report_segment_auc(tmp_path, "val", tmp_path / "explain" / "val", auc)
    text = (tmp_path / "report.md").read_text()
    assert text.count(SEGMENT_SECTION) == 1 and "0.9700" in text and "explain/val/index.html" in text
    assert text.index(SEGMENT_SECTION) < text.index("## Configs used") and "## Stacking" in text
