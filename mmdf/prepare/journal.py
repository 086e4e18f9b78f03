"""The journal: one JSON line per finished clip, appended as clips finish, read back as a compact table.

A killed run leaves at most a torn last line, which readers skip and the next
writer ends with a newline. The same clip may appear several times (``--force``,
a clip replaced in place); the latest ``prepared_at`` wins.

Readers build columns in batches (strings stored by pyarrow, not as Python
objects), so the parent of a 320k-clip run holds about the size of the
manifest itself, not a dict per row.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Iterator

import pandas as pd

from mmdf.prepare.row import DTYPES, KEY_FIELDS, ManifestRow

BATCH = 50_000
_PANDAS_DTYPES = {"str": "string[pyarrow]", "float": "float64", "bool": "boolean", "int32": "Int32"}


def journal_files(root: Path) -> list[Path]:
    journal_dir = Path(root) / "journal"
    return sorted(journal_dir.glob("*.jsonl")) if journal_dir.is_dir() else []


def iter_journal(root: Path) -> Iterator[dict]:
    """Every parsable line of every shard's journal, in file order."""
    for file in journal_files(root):
        with open(file, encoding="utf-8") as fh:
            yield from filter(None, map(_parse, fh))


def _parse(line: str) -> dict | None:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None  # torn last line of a killed run


def read_journal(root: Path) -> dict[tuple[str, str], dict]:
    """Finished clips as (split, video_name) -> journal record; the latest row wins (small journals, tests)."""
    rows: dict[tuple[str, str], dict] = {}
    for row in iter_journal(root):
        key = (row["split"], row["video_name"])
        if key not in rows or row.get("prepared_at", 0) >= rows[key].get("prepared_at", 0):
            rows[key] = row
    return rows


class RowTable:
    """Accumulates rows (records or :class:`ManifestRow`) into a compact DataFrame, batch by batch."""

    def __init__(self, columns: Iterable[str] | None = None):
        self.columns = list(columns or DTYPES)
        self.parts: list[pd.DataFrame] = []
        self.buffer: dict[str, list] = {c: [] for c in self.columns}

    def add(self, row: dict | ManifestRow) -> None:
        record = row.record() if isinstance(row, ManifestRow) else row
        for column, values in self.buffer.items():
            values.append(record.get(column))
        if len(self.buffer[self.columns[0]]) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        if self.buffer[self.columns[0]]:
            self.parts.append(pd.DataFrame({c: pd.array(v, dtype=_PANDAS_DTYPES[DTYPES[c]])
                                            for c, v in self.buffer.items()}))
            self.buffer = {c: [] for c in self.columns}

    def frame(self) -> pd.DataFrame:
        """All rows so far, one per clip (the latest ``prepared_at`` wins when there is that column)."""
        self._flush()
        if not self.parts:
            return pd.DataFrame({c: pd.array([], dtype=_PANDAS_DTYPES[DTYPES[c]]) for c in self.columns})
        frame = pd.concat(self.parts, ignore_index=True) if len(self.parts) > 1 else self.parts[0]
        self.parts = [frame]
        return latest(frame)


def latest(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (split, video_name): the latest ``prepared_at``, the later line on a tie."""
    if "prepared_at" in frame:
        frame = frame.sort_values("prepared_at", kind="stable", na_position="first")
    return frame.drop_duplicates(list(KEY_FIELDS), keep="last").reset_index(drop=True)


def read_journal_table(root: Path, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Every shard's journal under ``root`` as a table of ``columns`` (default: all row fields)."""
    wanted = list(columns or DTYPES)
    table = RowTable([*KEY_FIELDS, *(c for c in wanted if c not in KEY_FIELDS)]
                     + (["prepared_at"] if "prepared_at" not in wanted else []))
    for record in iter_journal(root):
        table.add(record)
    return table.frame()


def concat_tables(*frames: pd.DataFrame) -> pd.DataFrame:
    """Tables of rows, later ones newer; one row per clip."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return RowTable().frame()
    return latest(pd.concat(frames, ignore_index=True)) if len(frames) > 1 else latest(frames[0])


class JournalWriter:
    """Appends rows to one shard's journal, each flushed as it finishes (a killed run resumes from there)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        torn = _ends_torn(path) if path.exists() else False
        self.fh = open(path, "a", encoding="utf-8")
        if torn:
            self.fh.write("\n")  # end a line torn by a killed run, so the next row parses

    def write(self, row: ManifestRow) -> None:
        self.fh.write(json.dumps(row.record()) + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def _ends_torn(path: Path) -> bool:
    with open(path, "rb") as fh:
        if fh.seek(0, os.SEEK_END) == 0:
            return False
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) != b"\n"
