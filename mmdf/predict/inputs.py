"""What `mmdf predict` is asked to score: files, folders, list files and ``-`` (a list on standard input).

Every input becomes one row of the output, in input order, including those
that cannot be scored: a path that does not exist (``missing``), an empty
file (``corrupt``), a file that is not a video container (``unsupported``).
A text file named ``.mp4`` is tried and comes out ``corrupt``. The check
here is by name and size only; decoding is preprocessing's job.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, TextIO

from mmdf.errors import MmdfError
from mmdf.prepare.media import VIDEO_SUFFIXES

log = logging.getLogger(__name__)

LIST_SUFFIXES = (".txt", ".csv", ".lst")
HEADER_WORDS = ("video_name", "path")


@dataclass(frozen=True)
class Screened:
    """One input: its path and, where it cannot be scored, why (``status`` None: to be prepared)."""

    path: Path
    status: str | None = None
    error: str = ""


def collect_inputs(inputs: Iterable[str | Path], recursive: bool = False, stdin: TextIO | None = None) -> list[Path]:
    """Expand folders (every file, sorted; ``recursive`` descends), list files and ``-`` into paths.

    A list's relative paths are relative to the list's folder (standard
    input's to the working directory); a ``video_name`` or ``path`` header
    line is skipped, so a challenge test list works as is. Paths that do not
    exist are kept (they come out ``missing``); hidden files in folders are skipped.
    """
    paths: list[Path] = []
    for item in inputs:
        if str(item) == "-":
            paths += _entries((stdin or sys.stdin).read().splitlines(), Path("."))
            continue
        item = Path(item)
        if item.is_dir():
            found = _folder_files(item, recursive)
            if not found:
                log.warning("%s holds no files%s", item, "" if recursive else " (--recursive descends into folders)")
            paths += found
        elif item.suffix.lower() in LIST_SUFFIXES and item.is_file():
            paths += _entries(item.read_text(encoding="utf-8-sig").splitlines(), item.parent)
        else:
            paths.append(item)
    if not paths:
        raise MmdfError("no clips to score: give video files, folders holding them, list files or - (a list on stdin)")
    return paths


def _folder_files(folder: Path, recursive: bool) -> list[Path]:
    pattern = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in pattern if p.is_file() and not any(part.startswith(".")
                                                                  for part in p.relative_to(folder).parts))


def _entries(lines: list[str], base: Path) -> list[Path]:
    """The paths of a list (first column), relative ones taken relative to ``base``."""
    entries = [line.split(",")[0].strip() for line in lines]
    return [Path(e) if Path(e).is_absolute() else base / e for e in entries if e and e not in HEADER_WORDS]


def screen(path: Path) -> Screened:
    """Whether ``path`` can go to preprocessing, and if not, its status and message."""
    if not path.exists():
        return Screened(path, "missing", f"file not found: {path}")
    if not path.is_file():
        return Screened(path, "unsupported", f"not a regular file: {path}")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        return Screened(path, "unsupported", f"not a video file ({path.suffix or 'no suffix'}); "
                                             f"supported: {' '.join(VIDEO_SUFFIXES)}")
    if path.stat().st_size == 0:
        return Screened(path, "corrupt", "empty file (0 bytes)")
    return Screened(path)
