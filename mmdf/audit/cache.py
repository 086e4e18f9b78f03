"""The audit's cache: perturbed clips and their scores, per perturbation and split.

``runs/<experiment>/audit/cache/<perturbation>/<split>/clips/<video_name>`` holds
the perturbed clips (written atomically, so one that exists is whole) and
``scores.csv`` beside them their scores, one row per clip; ``features/`` holds
predict's feature cache of the audited clips. Perturbed clips depend
on the source clips only; scores depend on the run too, so they are dropped when
the run's stacker or a branch's metrics change (a retrained run).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd

from mmdf.audit.config import BASELINE
from mmdf.audit.perturb import PERTURBATIONS
from mmdf.files import atomic_write
from mmdf.stack.audit_link import RUN_KEY_FILE

log = logging.getLogger(__name__)

TEXT_COLUMNS = ("status", "error", "perturb_status", "perturb_note")


class AuditCache:
    """Paths and score tables under ``root`` (``runs/<experiment>/audit/cache``)."""

    def __init__(self, root: str | Path, split: str):
        self.root, self.split = Path(root), split

    @property
    def features(self) -> Path:
        """predict's own feature cache for the audited clips (kept apart from the run's predict cache)."""
        return self.root / "features"

    def folder(self, perturbation: str) -> Path:
        return self.root / perturbation / self.split

    def clip_path(self, perturbation: str, video_name: str) -> Path:
        return self.folder(perturbation) / "clips" / video_name

    def scores_path(self, perturbation: str) -> Path:
        return self.folder(perturbation) / "scores.csv"

    def read_scores(self, perturbation: str) -> pd.DataFrame | None:
        """The cached score rows of a perturbation, or None."""
        path = self.scores_path(perturbation)
        if not path.is_file():
            return None
        frame = pd.read_csv(path, dtype={c: str for c in ("video_name", *TEXT_COLUMNS)})
        for col in TEXT_COLUMNS:
            frame[col] = frame[col].fillna("").astype(str)
        return frame

    def write_scores(self, perturbation: str, scores: pd.DataFrame) -> Path:
        path = self.scores_path(perturbation)
        with atomic_write(path) as tmp:
            scores.to_csv(tmp, index=False)
        return path

    def check_run(self, key: str, force: bool = False) -> None:
        """Drop every cached score made by another state of the run (and everything with ``force``)."""
        if force and self.root.is_dir():
            shutil.rmtree(self.root)
        marker = self.root / RUN_KEY_FILE
        if marker.is_file() and marker.read_text().strip() != key:
            stale = [p for name in (BASELINE, *PERTURBATIONS) for p in self.root.glob(f"{name}/*/scores.csv")]
            log.info("audit: the run changed since its last audit; dropping %d cached score table(s)", len(stale))
            for path in stale:
                path.unlink()
        with atomic_write(marker) as tmp:
            tmp.write_text(key + "\n")
