"""One `mmdf prepare` per cache shard at a time: a lock file in the cache root holding the owner's pid.

Two runs of the same shard on one cache would prepare the same clips twice
and interleave their journal lines; the second stops at once with a message
naming the first (its pid, host and start time). Shards of one cache
(``--shard i/N``, possibly on several machines sharing the folder) take
different locks and run side by side.

The lock is an ``flock`` on ``prepare-<i>-of-<N>.lock``: the kernel drops it
when its owner dies however it dies, so a stale lock (its pid dead) is simply
taken over. Where the file system has no ``flock``, the file's content is
the lock (not race-free, a fallback): a lock whose pid is dead on this host is
taken over; one from another host stands until that run ends (or the file is
deleted by hand).
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from mmdf.errors import MmdfError
from mmdf.files import pid_alive

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None


def lock_path(root: Path, shard: tuple[int, int] = (0, 1)) -> Path:
    return Path(root) / f"prepare-{shard[0]}-of-{shard[1]}.lock"


def _owner() -> str:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")})


def _read_owner(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}


def _in_use(path: Path, owner: dict) -> MmdfError:
    who = f"pid {owner.get('pid', '?')} on {owner.get('host', '?')}, started {owner.get('started', '?')}"
    return MmdfError(
        f"the cache {path.parent} is in use by another `mmdf prepare` ({who}); wait for it to finish or stop it, "
        f"then run again (lock file: {path})"
    )


@contextmanager
def cache_lock(root: Path, shard: tuple[int, int] = (0, 1)) -> Iterator[Path]:
    """Hold the lock of ``shard`` of the cache ``root`` for the block; raise :class:`MmdfError` if another run has it."""
    path = lock_path(root, shard)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _flock(fd, path):
            os.close(fd)
            fd = None
            with _pid_lock(path):
                yield path
            return
        os.ftruncate(fd, 0)
        os.write(fd, _owner().encode())
        yield path
        os.ftruncate(fd, 0)
    finally:
        if fd is not None:
            os.close(fd)  # releases the flock


def _flock(fd: int, path: Path) -> bool:
    """Take the flock (True), raise when another process holds it, False where flock is unsupported."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _in_use(path, _read_owner(path)) from None
    except OSError:  # e.g. ENOLCK / EOPNOTSUPP on some network file systems
        return False
    return True


@contextmanager
def _pid_lock(path: Path) -> Iterator[None]:
    """The fallback: the lock file's content names its owner; a dead owner's lock is taken over."""
    owner = _read_owner(path)
    pid = owner.get("pid")
    if isinstance(pid, int) and pid != os.getpid():
        mine = owner.get("host") == socket.gethostname()
        if not mine or pid_alive(pid):
            raise _in_use(path, owner)
    path.write_text(_owner(), encoding="utf-8")
    try:
        yield
    finally:
        path.write_text("", encoding="utf-8")
