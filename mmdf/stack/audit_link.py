"""The run report's link to the robustness audit, and the key that says whether the audit is stale.

``mmdf audit`` writes ``audit/audit.md`` and links it from the run's
``report.md``; ``mmdf stack`` rewrites that report and links the audit again.
Both do it here, below them, so that the stack does not import the audit.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from mmdf.files import atomic_write

RUN_KEY_FILE = "run_key.txt"  # in runs/<experiment>/audit/cache/: the run_key the audit's scores were made for
REPORT_LINK = "Robustness audit: [audit/audit.md](audit/audit.md)"


def run_key(run_dir: str | Path) -> str:
    """A digest of what the scores depend on: ``stack/stacker.json`` and every branch's ``metrics.json``."""
    run_dir = Path(run_dir)
    digest = hashlib.sha1()
    for path in [run_dir / "stack" / "stacker.json", *sorted(run_dir.glob("*/metrics.json"))]:
        if path.is_file():
            digest.update(path.relative_to(run_dir).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def link_from_report(run_dir: Path) -> bool:
    """Add the audit's link to the run's ``report.md`` once; False where there is no report.

    `mmdf stack` rewrites the report and calls this again: an audit made on an
    earlier state of the run is still linked, and said to be stale.
    """
    report = run_dir / "report.md"
    if not report.is_file() or not (run_dir / "audit" / "audit.md").is_file():
        return False
    marker = run_dir / "audit" / "cache" / RUN_KEY_FILE
    stale = not marker.is_file() or marker.read_text().strip() != run_key(run_dir)
    note = (f"\n\nIt was made before the run's latest stack or training: re-run `mmdf audit --run {run_dir}` "
            "for figures of the run as it is.") if stale else ""
    text = report.read_text()
    if REPORT_LINK not in text:
        with atomic_write(report) as tmp:
            tmp.write_text(text.rstrip("\n") + f"\n\n## Robustness audit\n\n{REPORT_LINK}{note}\n")
    return True
