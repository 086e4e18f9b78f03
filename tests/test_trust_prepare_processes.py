"""`mmdf prepare` as a process: its workers die with it, and one run per cache shard at a time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from media_factory import make_clip, make_labels
from mmdf.run_config import load_config
from mmdf.errors import MmdfError
from mmdf.prepare import lock as lock_module
from mmdf.prepare.cache import cache_root
from mmdf.prepare.lock import cache_lock, lock_path
from mmdf.prepare.runner import prepare_dataset

psutil = pytest.importorskip("psutil")

TINY = ["data.val_labels=null", "data.test_list=null", "prepare.progress=false", "prepare.faces.num_frames=2",
        "prepare.mel.image_size=32", "prepare.faces.crop_size=32"]


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("procs")
    names = [f"c{i}.mp4" for i in range(8)]
    for i, name in enumerate(names):
        make_clip(root / "trainset" / name, duration=1.5, seed=i, size=128)
    make_labels(root / "trainset_label.txt", [(n, i % 2) for i, n in enumerate(names)])
    return root


def config(root, cache, *extra):
    return load_config(None, [f"data.root={root}", f"data.cache_dir={cache}", *TINY, *extra])


def alive(procs) -> list:
    """Those of ``procs`` still running (zombies count as gone: they hold no memory)."""
    out = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except psutil.NoSuchProcess:
            pass
    return out


def workers_of(parent, n: int, timeout: float = 180.0) -> list:
    """Wait until ``parent`` has ``n`` grandchildren (workers of its fork server); return all its descendants."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        descendants = parent.children(recursive=True)
        if sum(p.ppid() != parent.pid for p in alive(descendants)) >= n:
            return descendants
        time.sleep(0.2)
    raise AssertionError(f"no {n} worker processes within {timeout} s")


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_workers_die_when_prepare_is_killed(small_dataset, tmp_path, repo_root):
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text("")
    cmd = [sys.executable, "-m", "mmdf", "prepare", "--config", str(cfg_file), f"data.root={small_dataset}",
           f"data.cache_dir={tmp_path / 'cache'}", "prepare.workers=2", *TINY]
    proc = subprocess.Popen(cmd, cwd=repo_root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        descendants = workers_of(psutil.Process(proc.pid), 2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    _, still = psutil.wait_procs(alive(descendants), timeout=10)
    survivors = alive(still)
    for p in survivors:
        p.kill()
    assert not survivors, f"{len(survivors)} process(es) outlived the killed `mmdf prepare`"


HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from mmdf.prepare.lock import cache_lock
    with cache_lock(Path(sys.argv[1])):
        print("held", flush=True)
        time.sleep(120)
    """
)


def test_second_run_on_a_cache_in_use_stops_with_a_clear_message(small_dataset, tmp_path, repo_root):
    cfg = config(small_dataset, tmp_path, "prepare.isolate=false")
    root = cache_root(cfg)
    root.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(root)], cwd=repo_root, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(MmdfError, match=rf"in use by another `mmdf prepare` \(pid {holder.pid} on .*wait for it"):
            prepare_dataset(cfg)
        assert not (root / "journal").exists(), "nothing done"
    finally:
        holder.kill()
        holder.wait()
    assert (prepare_dataset(cfg)["status"] != "").all()  # the lock went with its owner


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def stale_lock(root, pid: int) -> None:
    import socket

    root.mkdir(parents=True, exist_ok=True)
    lock_path(root).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "earlier"}))


@pytest.mark.parametrize("flock", [True, False], ids=["flock", "pid-file"])
def test_stale_lock_is_taken_over(tmp_path, monkeypatch, flock):
    if not flock:
        monkeypatch.setattr(lock_module, "fcntl", None)  # a file system without flock
    stale_lock(tmp_path, dead_pid())
    with cache_lock(tmp_path) as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()


def test_pid_file_lock_of_a_live_process_stands(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_module, "fcntl", None)
    stale_lock(tmp_path, os.getppid())  # alive: the process that started the tests
    with pytest.raises(MmdfError, match=f"pid {os.getppid()}"):
        with cache_lock(tmp_path):
            pass


def test_shards_take_separate_locks(tmp_path):
    with cache_lock(tmp_path, (0, 2)), cache_lock(tmp_path, (1, 2)):
        assert lock_path(tmp_path, (0, 2)) != lock_path(tmp_path, (1, 2))
