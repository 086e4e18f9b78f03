"""Wall time and peak memory of one step, run in this process or in a child process.

Two memory figures, both resident set sizes in MiB:

- ``peak_rss_mb``, the largest single process: for a child process from
  ``os.wait4`` (the child and the descendants it waited for); in this
  process the peak is reset first (Linux ``clear_refs``), so it is the main
  process's peak during the step.
- ``peak_tree_mb``, the whole process tree (the step and its data-loader,
  prepare or torchrun workers) summed, sampled every half second; pages
  shared between forked processes count once per process, so it is an
  upper bound of what the step needs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import psutil


@dataclass
class Measured:
    wall_s: float
    peak_rss_mb: float  # NaN where the platform cannot tell
    peak_tree_mb: float = float("nan")
    returncode: int = 0


def tree_rss_mb(pid: int) -> float:
    """Summed resident memory of ``pid`` and all its descendants (NaN once it has gone)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return float("nan")
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:  # ended between listing and reading
            continue
    return total / 2**20


class TreeSampler:
    """Tracks the peak of :func:`tree_rss_mb` of a process in a background thread."""

    def __init__(self, pid: int, interval: float = 0.5):
        self.pid, self.interval, self.peak = pid, interval, float("nan")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            value = tree_rss_mb(self.pid)
            if value > 0 and not value <= self.peak:
                self.peak = value
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "TreeSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _read_hwm_kb() -> float:
    try:
        with open("/proc/self/status") as fh:
            lines = fh.readlines()
    except OSError:
        return float("nan")
    return next((float(line.split()[1]) for line in lines if line.startswith("VmHWM:")), float("nan"))


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets the peak RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def measure_call(fn: Callable[[], object]) -> Measured:
    """Run ``fn()`` here; the peak is this process's during the call (NaN if it cannot be reset)."""
    can_reset = _reset_hwm()
    start = time.perf_counter()
    with TreeSampler(os.getpid()) as tree:
        fn()
    wall = time.perf_counter() - start
    peak = _read_hwm_kb() / 1024 if can_reset else float("nan")
    return Measured(wall, peak, tree.peak)


def measure_command(argv: list[str], log_path: Path, echo: bool = True) -> Measured:
    """Run ``argv``; its output goes to ``log_path`` (appended) and, when ``echo``, to stderr too.

    Ctrl-C reaches the child as well (same process group); the child is
    waited for, so an interrupted step never leaves a process behind.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        tee = threading.Thread(target=_copy, args=(proc.stdout, log, echo), daemon=True)
        tee.start()
        with TreeSampler(proc.pid) as tree:
            try:
                rusage = _wait(proc)
            except KeyboardInterrupt:
                proc.send_signal(signal.SIGINT)
                rusage = _wait(proc)
                raise
            finally:
                tee.join(timeout=10)
    wall = time.perf_counter() - start
    # ru_maxrss is in kilobytes on Linux, bytes on macOS
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    peak = rusage.ru_maxrss / scale if rusage else float("nan")
    return Measured(wall, peak, tree.peak, proc.returncode)


def _wait(proc: subprocess.Popen):
    if not hasattr(os, "wait4"):
        proc.wait()
        return None
    while True:
        try:
            _, status, rusage = os.wait4(proc.pid, 0)
            break
        except InterruptedError:
            continue
    proc.returncode = os.waitstatus_to_exitcode(status)
    return rusage


def _copy(stream, log, echo: bool) -> None:
    out = sys.stderr.buffer if echo and hasattr(sys.stderr, "buffer") else None
    for chunk in iter(lambda: stream.read1(65536), b""):
        log.write(chunk)
        log.flush()
        if out is not None:
            out.write(chunk)
            out.flush()
