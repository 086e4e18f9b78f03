"""A trial's step records (``steps.json``): what each step ran with, when, and how it ended.

The runner writes them as steps start and finish (several at once with
``parallel``); the summary and ``mmdf demo`` read them.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from mmdf.files import atomic_write

RECORDS = "steps.json"


def read_records(run_dir: Path) -> dict[str, dict]:
    path = Path(run_dir) / RECORDS
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def write_records(run_dir: Path, records: dict[str, dict]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(run_dir / RECORDS) as tmp:
        tmp.write_text(json.dumps(records, indent=2))


_RECORDS_LOCK = threading.Lock()  # steps running at once update one steps.json


def set_record(run_dir: Path, step: str, record: dict) -> None:
    """Replace one step's record in ``steps.json``, keeping the others' (also those of steps running at once)."""
    with _RECORDS_LOCK:
        records = read_records(run_dir)
        records[step] = record
        write_records(run_dir, records)
