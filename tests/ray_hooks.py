"""Set up in every Ray worker of tests/test_prepare_ray.py (``worker_process_setup_hook``): clips that kill
their worker, injected into the worker's copy of the per-clip function (a test cannot patch another process)."""

from __future__ import annotations

import os
from pathlib import Path


def inject_crashes() -> None:
    """``crash*.mp4`` kills its worker on every try (a decoder that segfaults on it); ``killed_once*.mp4``
    kills it on the first try only (a worker lost mid-run: the OOM killer, a node going away)."""
    from mmdf.prepare import clip as clip_module

    real = clip_module.process_clip

    def crashing(task, *args):
        if task.video_name.startswith("crash"):
            os._exit(11)
        marker = Path(task.path + ".killed")
        if task.video_name.startswith("killed_once") and not marker.exists():
            marker.touch()
            os._exit(9)
        return real(task, *args)

    clip_module.process_clip = crashing
