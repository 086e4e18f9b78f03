"""`mmdf predict --segments/--explain`: the segment table and the pages of a call, written as clips are scored.

For every scored clip the branches that score parts of a clip in time give
their :class:`~mmdf.train.branches.base.Segments` (from predict's feature
cache: nothing is prepared again); their rows are appended to
``segments.csv`` (:mod:`mmdf.predict.segments`) and, with an explain folder,
the clip's page is written there (:mod:`mmdf.predict.page`). :meth:`close`
writes the index, and where segment labels are given, the segment-level AUC
per modality (``segment_auc.csv`` and the index).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pandas as pd

from mmdf.figures import markdown_table
from mmdf.files import atomic_write
from mmdf.predict.page import clip_page, index_page
from mmdf.predict.segments import SEGMENT_COLUMNS, part_thresholds, read_segment_labels, segment_auc, segment_rows
from mmdf.stack.report import insert_section
from mmdf.train.branches import get_branch

log = logging.getLogger(__name__)


class ExplainWriter:
    """Segments and pages of one predict call (``predictor``: a :class:`mmdf.predict.predict.Predictor`)."""

    def __init__(self, predictor, explain_dir: str | Path | None = None, segments_file: str | Path | None = None,
                 labels: str | Path | None = None):
        self.predictor = predictor
        self.dir = Path(explain_dir) if explain_dir is not None else None
        self.segments_file = Path(segments_file) if segments_file is not None else None
        if self.segments_file is None and self.dir is not None:
            self.segments_file = self.dir / "segments.csv"
        self.labels = read_segment_labels(labels) if labels is not None else None
        self.modality_of = {b: get_branch(b).modality for b in predictor.branches}
        self.thresholds = part_thresholds(predictor.dir, predictor.stacker["branches"], predictor.point["target_fpr"])
        self.index: list[dict] = []
        self.parts: list[pd.DataFrame] = []
        self.pages: set[str] = set()
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
        if self.segments_file is not None:
            self.segments_file.parent.mkdir(parents=True, exist_ok=True)
            self.segments_file.write_text(",".join(SEGMENT_COLUMNS) + "\n", encoding="utf-8")

    def add(self, chunk: pd.DataFrame) -> None:
        """Segments (and pages) of the scored rows of one chunk of predict's output."""
        scored = chunk[chunk["prob"].notna()]
        found = self.predictor.segments([Path(p) for p in scored["path"]])
        rows = []
        for (_, row), segments in zip(scored.iterrows(), found):
            rows.append(segment_rows(row["video_name"], segments, self.modality_of))
            page = self._page(row, segments) if self.dir is not None else None
            self.index.append({**row[["video_name", "score", "prob", "decision", "reason"]].to_dict(), "page": page})
        for _, row in chunk[chunk["prob"].isna()].iterrows():
            self.index.append({**row[["video_name", "score", "prob", "decision", "reason"]].to_dict(), "page": None})
        if rows and self.segments_file is not None:
            table = pd.concat(rows, ignore_index=True).round(4)
            with open(self.segments_file, "a", encoding="utf-8") as fh:
                fh.write(table[SEGMENT_COLUMNS].to_csv(header=False, index=False))
            self.parts.append(table)

    def _page(self, row: pd.Series, segments: dict) -> str:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(row["video_name"])).stem) or "clip"
        name, n = f"{stem}.html", 1
        while name in self.pages:  # the same name in two folders
            n += 1
            name = f"{stem}-{n}.html"
        self.pages.add(name)
        text = clip_page(row, segments, self.thresholds, self.predictor.branches,
                         self.predictor.stacker["estimator"].contribution_unit, self.modality_of)
        with atomic_write(self.dir / name) as tmp:
            tmp.write_text(text, encoding="utf-8")
        return name

    def close(self) -> pd.DataFrame | None:
        """The index page (with an explain folder) and the segment AUCs where labels were given (returned)."""
        auc = None
        if self.labels is not None and self.parts:
            auc = segment_auc(pd.concat(self.parts, ignore_index=True), self.labels)
            if self.dir is not None:
                with atomic_write(self.dir / "segment_auc.csv") as tmp:
                    auc.to_csv(tmp, index=False)
            log.info("segment-level AUC per modality:\n%s", auc.to_string(index=False))
        if self.dir is not None:
            fpr = self.predictor.point["target_fpr"]
            note = (f"run {self.predictor.dir}; decisions at FPR {fpr:g}; parts marked above each branch's "
                    f"threshold for that FPR on its out-of-fold clip scores")
            with atomic_write(self.dir / "index.html") as tmp:
                tmp.write_text(index_page(pd.DataFrame(self.index), auc, note), encoding="utf-8")
        return auc


SEGMENT_SECTION = "## Segment-level AUC"


def report_segment_auc(run_dir: str | Path, split: str, out_dir: Path, auc: pd.DataFrame) -> Path | None:
    """The segment-level AUC per modality of ``mmdf explain --split`` as a section of the run's ``report.md``.

    A section of an earlier explain is replaced, not repeated; ``mmdf stack``
    rewrites the report, after which explaining the split again restores it.
    None where the run has no report.
    """
    report = Path(run_dir) / "report.md"
    if not report.is_file():
        return None
    text = report.read_text(encoding="utf-8")
    start = text.find(SEGMENT_SECTION)
    if start >= 0:  # drop the earlier section, up to the next heading of its level
        end = text.find("\n## ", start + len(SEGMENT_SECTION))
        text = text[:start] + (text[end + 1:] if end >= 0 else "")
    index = os.path.relpath(Path(out_dir).absolute() / "index.html", report.parent.absolute())
    lines = [f"{SEGMENT_SECTION} ({split}, `mmdf explain --split {split}`)", "",
             "Each part of a clip in time (a face crop, a sync window, a column of the audio CNN's map) scored "
             f"on its own against the data root's segment labels; the pages: [{index}]({index}).", "",
             markdown_table(auc), ""]
    with atomic_write(report) as tmp:
        tmp.write_text(text)
    return insert_section(report, lines)
