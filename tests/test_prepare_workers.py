"""Worker processes: a clip that kills its worker costs that clip only, never the run."""

from __future__ import annotations

import os

import pytest

from media_factory import make_clip, make_labels
from mmdf.config import load_config
from mmdf.prepare import clip as clip_module
from mmdf.prepare.runner import prepare_dataset


@pytest.mark.skipif(os.name != "posix", reason="relies on fork to pass the patched worker function")
def test_worker_crash_is_isolated(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    for name in ("a.mp4", "crash.mp4", "b.mp4", "c.mp4"):
        make_clip(root / "trainset" / name, duration=1.2, face=name != "c.mp4")
    make_labels(root / "trainset_label.txt", [("a.mp4", 0), ("crash.mp4", 1), ("b.mp4", 0), ("c.mp4", 1)])
    real = clip_module.process_clip

    def crashing(task, *args):
        if task.video_name == "crash.mp4":
            os._exit(11)  # what a segfaulting decoder does to a worker
        return real(task, *args)

    monkeypatch.setattr(clip_module, "process_clip", crashing)  # forked workers inherit it
    cfg = load_config(None, [
        f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "data.val_labels=null",
        "data.test_list=null", "prepare.workers=2", "prepare.progress=false",
        "prepare.faces.num_frames=2", "prepare.mel.image_size=32", "prepare.faces.crop_size=32",
    ])
    manifest = prepare_dataset(cfg).set_index("video_name")
    assert manifest.loc["crash.mp4", "status"] == "corrupt"
    assert "crashed" in manifest.loc["crash.mp4", "error"]
    assert manifest.loc["a.mp4", "status"] == "ok" and manifest.loc["b.mp4", "status"] == "ok"
    assert manifest.loc["c.mp4", "status"] == "no_face"
