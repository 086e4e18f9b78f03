"""The Ray engine: the clips of `mmdf prepare` / `mmdf predict` as Ray tasks on a cluster (``--engine ray``).

Each clip is one Ray task that calls the local engine's own per-clip
function (:func:`mmdf.prepare.clip.run_task`, hence ``process_clip``): same
features, same row. The driver keeps a bounded number of clips in flight (two
per CPU of the cluster), appends each finished row to its shard's journal at
once and writes the manifest at the end, exactly as the local engine does, so
a driver killed and started again does only the clips its journal lacks.

A Ray worker keeps its MTCNN between clips (one per process, as a local
worker). A worker that dies (a node lost, the OOM killer, a decoder crash) has
its clip retried by Ray, :data:`RETRIES` times; a clip that still kills its
worker is ``corrupt``, the local engine's verdict for a clip that crashes its
worker alone. Any other Ray failure (the cluster lost) stops the run without a
row, so that the next run does that clip again.

Where ``prepare.device`` is a GPU, each task asks Ray for :data:`GPU_SHARE` of
one (four clips share a GPU; MTCNN is small) and runs its detector on the GPU
Ray gives it (not tested here: no GPU). Every node writes features under the
cache root itself, so the cache must be on a filesystem every node sees.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Iterable

from mmdf.prepare.clip import ClipTask, empty_row, run_task, set_worker_state

log = logging.getLogger(__name__)

RETRIES = 2  # Ray's retries of a clip whose worker died (then it is `corrupt`)
GPU_SHARE = 0.25  # of one GPU per clip when prepare.device is a GPU
CRASHED = ("the Ray worker died on this clip {n} times (decoder failure or out of memory): {error}")


def connect(address: str | None, workers: int = 0):
    """The ``ray`` module, connected: to the cluster at ``address``, else a local Ray of ``workers`` CPUs
    (0: all). A Ray already initialised in this process (a test's cluster, an outer script) is used as it is."""
    import ray  # deferred: the local engine never needs ray

    if not ray.is_initialized():
        local = {"num_cpus": workers} if address is None and workers > 0 else {}
        ray.init(address=address, include_dashboard=False, configure_logging=False, **local)
    return ray


def _remote_clip(cfg, root: str, task: ClipTask):
    """A Ray task: one clip through the local engine's function, in a single-threaded worker."""
    set_worker_state(cfg, root, threads=1)  # keeps this worker's detector when the settings are unchanged
    return run_task(task)


def _options(prepare_cfg) -> tuple[object, dict]:
    """(the config the workers get, the task's resources): a GPU device becomes Ray's GPU of the task."""
    on_gpu = str(prepare_cfg.device).startswith("cuda")
    cfg = dataclasses.replace(prepare_cfg, device="cuda") if on_gpu else prepare_cfg  # Ray picks the GPU
    return cfg, {"num_cpus": 1, "num_gpus": GPU_SHARE if on_gpu else 0, "max_retries": RETRIES,
                 "retry_exceptions": False}


def run_on_ray(tasks: Iterable[ClipTask], prepare_cfg, root: Path, report, workers: int = 0) -> None:
    """Every task as a Ray task; ``report.finish(task, row)`` for each as it finishes (in the driver).

    ``workers``: at most twice that many clips in flight (0: twice the cluster's CPUs).
    """
    ray = connect(prepare_cfg.address, workers)
    cfg, options = _options(prepare_cfg)
    remote = ray.remote(_remote_clip).options(**options)
    cfg_ref = ray.put(cfg)
    window = 2 * (workers or max(1, int(ray.cluster_resources().get("CPU", 1))))
    pending = iter(tasks)
    in_flight: dict = {}
    while True:
        while len(in_flight) < window and (task := next(pending, None)) is not None:
            in_flight[remote.remote(cfg_ref, str(root), task)] = task
        if not in_flight:
            return
        done, _ = ray.wait(list(in_flight), num_returns=1)
        for ref in done:
            task = in_flight.pop(ref)
            report.finish(task, _result(ray, ref, task))


def _result(ray, ref, task: ClipTask):
    """The clip's row; ``corrupt`` where its worker died on every try."""
    from ray.exceptions import OutOfMemoryError, WorkerCrashedError  # deferred: ray is an optional extra

    try:
        return ray.get(ref)
    except (WorkerCrashedError, OutOfMemoryError) as exc:
        error = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        return empty_row(task, "corrupt", CRASHED.format(n=RETRIES + 1, error=error))
