"""Worker processes: a clip that kills its worker costs that clip only, never the run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from media_factory import make_clip, make_labels

# Run in a fresh interpreter with fork, so that the patched worker function reaches the workers.
SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from mmdf.run_config import load_config
    from mmdf.prepare import clip as clip_module, runner

    real = clip_module.process_clip

    def crashing(task, *args):
        if task.video_name == "crash.mp4":
            os._exit(11)  # what a segfaulting decoder does to a worker
        return real(task, *args)

    clip_module.process_clip = crashing
    runner.MP_CONTEXT = "fork"
    root, cache = sys.argv[1], sys.argv[2]
    cfg = load_config(None, [
        f"data.root={root}", f"data.cache_dir={cache}", "data.val_labels=null", "data.test_list=null",
        "prepare.workers=2", "prepare.progress=false", "prepare.faces.num_frames=2",
        "prepare.mel.image_size=32", "prepare.faces.crop_size=32",
    ])
    manifest = runner.prepare_dataset(cfg)
    print(json.dumps(dict(zip(manifest.video_name, zip(manifest.status, manifest.error)))))
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="the crash is injected through fork")
def test_worker_crash_is_isolated(tmp_path, repo_root):
    root = tmp_path / "ds"
    for name in ("a.mp4", "crash.mp4", "b.mp4", "c.mp4"):
        make_clip(root / "trainset" / name, duration=1.2, face=name != "c.mp4")
    make_labels(root / "trainset_label.txt", [("a.mp4", 0), ("crash.mp4", 1), ("b.mp4", 0), ("c.mp4", 1)])
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(root), str(tmp_path / "cache")],
        cwd=repo_root, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["crash.mp4"][0] == "corrupt" and "crashed" in result["crash.mp4"][1]
    assert result["a.mp4"][0] == "ok" and result["b.mp4"][0] == "ok"
    assert result["c.mp4"][0] == "no_face"


def test_workers_start_cleanly_after_in_process_work(tmp_path):
    """Torch and OpenCV already used in this process must not hang the worker processes."""
    import numpy as np

    from mmdf.run_config import load_config
    from mmdf.prepare.faces import FaceDetector
    from mmdf.prepare.config import FaceConfig
    from mmdf.prepare.runner import prepare_dataset

    FaceDetector(FaceConfig()).detect(np.zeros((2, 64, 64, 3), np.uint8))  # starts torch's thread pool here
    root = tmp_path / "ds"
    make_clip(root / "trainset" / "a.mp4", duration=1.2)
    make_clip(root / "trainset" / "b.mp4", duration=1.2, seed=1)
    make_labels(root / "trainset_label.txt", [("a.mp4", 0), ("b.mp4", 1)])
    cfg = load_config(None, [
        f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "data.val_labels=null",
        "data.test_list=null", "prepare.workers=2", "prepare.progress=false",
        "prepare.faces.num_frames=2", "prepare.mel.image_size=32", "prepare.faces.crop_size=32",
    ])
    assert prepare_dataset(cfg)["status"].tolist() == ["ok", "ok"]
