"""Atomic, durable file writes, shared by every step that leaves outputs behind.

Runs last hours and get killed (or the machine loses power); a reader must
never find a half-written checkpoint, feature, manifest or submission.
Everything is written under a temporary name beside its target, flushed to
disk (``fsync``), renamed onto the target (a rename within one folder is
atomic on POSIX file systems) and the folder flushed too, so that the rename
itself survives a crash.

Temporary files are named ``.<name>.<pid>-<host>.mmdf-tmp``. A run killed
mid-write leaves one behind; :func:`remove_stale_temps` deletes those whose
writer is gone (its pid is dead on this host, or, for another host sharing
the folder, the file has not changed for ``min_age`` seconds).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

TEMP_SUFFIX = ".mmdf-tmp"
# new names, and those of earlier versions (``.<name>.tmp<pid>``)
_TEMP_NAME = re.compile(r"^\..+\.(?:(?P<pid>\d+)-(?P<host>[0-9a-f]{6})\.mmdf-tmp|tmp(?P<old_pid>\d+))$")


def host_tag() -> str:
    """Six hex digits naming this machine in temporary names (folders may be shared across hosts)."""
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]


def temporary_name(path: str | Path) -> Path:
    """The hidden name ``path`` is written under: ``.<name>.<pid>-<host>.mmdf-tmp`` in the same folder."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{host_tag()}{TEMP_SUFFIX}")


@contextmanager
def atomic_write(path: str | Path, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``path`` only if the block succeeds.

    The parent folder is created; on an exception the temporary file is
    removed. With ``durable`` the file is fsynced before the rename and the
    folder after it, so a crash leaves the old file or the new one, whole.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        if durable:
            fsync_path(tmp)
        os.replace(tmp, path)
        if durable:
            fsync_path(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def fsync_path(path: str | Path) -> None:
    """Flush a file's (or a folder's) data to disk; folders cannot be opened on Windows, so skipped there."""
    path = Path(path)
    if path.is_dir() and os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine."""
    import psutil

    return psutil.pid_exists(pid)


def is_stale_temp(path: Path, min_age: float = 3600.0, now: float | None = None) -> bool:
    """A leftover of a killed writer: a temporary name whose pid is dead here, or idle for ``min_age`` s elsewhere."""
    match = _TEMP_NAME.match(path.name)
    if not match:
        return False
    if match["host"] in (None, host_tag()):  # written here (names of earlier versions carry no host)
        pid = int(match["pid"] or match["old_pid"])
        return pid != os.getpid() and not pid_alive(pid)
    try:
        return (now or time.time()) - path.stat().st_mtime >= min_age
    except OSError:
        return False  # gone meanwhile


def remove_stale_temps(folder: str | Path, recursive: bool = True, min_age: float = 3600.0) -> list[Path]:
    """Delete the temporary files that killed runs left under ``folder``; return what was removed.

    Safe while other processes write there: a temporary file whose writer is
    alive (or, written from another host, changed within ``min_age`` seconds)
    is kept.
    """
    removed: list[Path] = []
    folders = [Path(folder)]
    while folders:
        try:
            entries = list(os.scandir(folders.pop()))
        except OSError:
            continue
        for entry in entries:
            if recursive and entry.is_dir(follow_symlinks=False):
                folders.append(Path(entry.path))
            elif entry.name.startswith(".") and is_stale_temp(Path(entry.path), min_age):
                Path(entry.path).unlink(missing_ok=True)
                removed.append(Path(entry.path))
    return removed


def json_safe(obj):
    """``obj`` with NaN and infinities as ``None``: JSON has no such numbers, and a reader must not guess."""
    import math

    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj
