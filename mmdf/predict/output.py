"""The scores file, written as clips are scored, so that a killed `mmdf predict` resumes where it stopped.

Rows are appended chunk by chunk (one write, flushed and fsynced), as CSV or
JSON lines (``--format json``: NaN becomes null). Every row is one line
(newlines in messages become spaces). With ``resume`` the rows already in
the file are kept where they match the first inputs, path by path; a torn
last line (a kill mid-write) is cut off, and scoring continues after them.
Without ``resume`` an existing file is replaced.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
from pathlib import Path

import pandas as pd

from mmdf.errors import MmdfError

log = logging.getLogger(__name__)

FORMATS = ("csv", "json")
DECIMALS = 6  # probabilities and contributions are written rounded, so reruns give the same text


def format_for(out: Path, fmt: str | None) -> str:
    """``fmt``, or the one the file name says (``.json``/``.jsonl`` -> json, else csv)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise MmdfError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt
    return "json" if Path(out).suffix.lower() in (".json", ".jsonl") else "csv"


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Rounded numbers and one-line text: what is written, and what :func:`predict_clips` returns."""
    frame = frame.copy()
    for col in frame.columns:
        if pd.api.types.is_float_dtype(frame[col]):
            frame[col] = frame[col].round(DECIMALS)
        elif frame[col].dtype == object:
            frame[col] = frame[col].map(lambda v: v.replace("\r", " ").replace("\n", " ") if isinstance(v, str) else v)
    return frame


def _json_line(record: dict) -> str:
    clean = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}
    return json.dumps(clean, default=str)


class ScoresWriter:
    """Appends scored chunks to ``path``; :meth:`open` says how many inputs were already done."""

    def __init__(self, path: str | Path, fmt: str, columns: list[str]):
        self.path = Path(path)
        self.fmt = fmt
        self.columns = columns

    def open(self, paths: list[str], resume: bool) -> pd.DataFrame:
        """Start the file (or keep its rows matching the first ``paths`` with ``resume``); returns kept rows."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = self._kept(paths) if resume and self.path.is_file() else None
        if kept is None:
            head = ",".join(self.columns) + "\n" if self.fmt == "csv" else ""
            self.path.write_text(head, encoding="utf-8")
            return pd.DataFrame(columns=self.columns)
        return kept

    def _kept(self, paths: list[str]) -> pd.DataFrame:
        text = self.path.read_text(encoding="utf-8")
        whole = text[: text.rfind("\n") + 1]  # a torn last line is dropped
        rows = self._parse(whole)
        if list(rows["path"].astype(str)) != paths[: len(rows)] or list(rows.columns) != self.columns:
            raise MmdfError(f"--resume: {self.path} holds rows for other inputs or another run's columns; "
                            "give the same inputs, or drop --resume to start over")
        with open(self.path, "r+", encoding="utf-8") as fh:
            fh.truncate(len(whole.encode("utf-8")))
        log.info("predict: resuming after %d clip(s) already in %s", len(rows), self.path)
        return rows

    def _parse(self, text: str) -> pd.DataFrame:
        if self.fmt == "csv":
            if not text.strip():
                raise MmdfError(f"--resume: {self.path} has no header line")
            return pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=[""])
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
        return pd.DataFrame(records, columns=self.columns)

    def write(self, chunk: pd.DataFrame) -> None:
        """Append one chunk in one write, on disk before returning."""
        chunk = chunk[self.columns]
        if self.fmt == "csv":
            text = chunk.to_csv(header=False, index=False)
        else:
            text = "".join(_json_line(r) + "\n" for r in chunk.to_dict(orient="records"))
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())


def verdict(row: pd.Series) -> str:
    """A short human-readable verdict for one clip (printed when one file is given)."""
    name = Path(str(row["path"])).name
    if pd.isna(row["prob"]):
        return f"{name}: not scored ({row['status']}: {row['error'] or 'no branch could use it'})"
    word = "FAKE" if row["decision"] == "fake" else "REAL"
    return (f"{name}: {word}, probability of a deepfake {row['prob']:.1%} "
            f"(called fake at FPR {row['target_fpr']:g}: score {row['score']:.3f} vs threshold "
            f"{row['threshold']:.3f}); {row['reason']}"
            + ("" if row["status"] == "ok" else f" [status {row['status']}: {row['error']}]"))
