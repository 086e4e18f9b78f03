"""What an audit runs: the split, the perturbations, a subset for a quick look."""

from __future__ import annotations

from dataclasses import dataclass, field

from mmdf.audit.perturb import PERTURBATIONS
from mmdf.audit.probes import WARN_AT
from mmdf.data.config import SPLITS
from mmdf.errors import MmdfError

BASELINE = "none"  # the unperturbed clips, scored by the same route as the perturbed ones


@dataclass
class AuditConfig:
    """An audit of one run on one labelled split; every perturbation by default."""

    split: str = "val"
    perturbations: list[str] = field(default_factory=lambda: list(PERTURBATIONS))
    max_clips: int | None = None  # a stratified, seeded subset of this many clips
    seed: int = 0
    jobs: int = 2  # clips perturbed at once (one single-threaded ffmpeg each)
    workers: int | None = None  # preprocessing processes for scoring (None: the run's prepare.workers)
    engine: str | None = None  # "local" or "ray" (None: the run's prepare.engine), see mmdf.prepare.ray_engine
    address: str | None = None  # the Ray cluster with engine "ray" (None: start a local Ray)
    # clips per predict chunk: the audit scores every perturbation in one predict call, and each chunk
    # starts the branches' data loaders afresh, so its chunks are larger than predict's default
    batch_size: int = 1024
    progress: bool = True
    force: bool = False  # drop the cache (perturbed clips and scores) and redo everything
    warn_at: float = WARN_AT  # a shortcut probe this separable is warned about

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise MmdfError(f"unknown split {self.split!r}; expected one of {', '.join(SPLITS)}")
        unknown = [p for p in self.perturbations if p not in PERTURBATIONS]
        if unknown:
            raise MmdfError(f"unknown perturbation(s) {', '.join(unknown)}; known: {', '.join(PERTURBATIONS)}")
        if len(set(self.perturbations)) != len(self.perturbations):
            raise MmdfError(f"perturbations listed twice: {', '.join(self.perturbations)}")
        if self.max_clips is not None and self.max_clips < 2:
            raise MmdfError(f"--max-clips must be at least 2 (a real and a fake clip), got {self.max_clips}")
        if self.jobs < 1:
            raise MmdfError(f"jobs must be at least 1, got {self.jobs}")


def parse_perturbations(text: str | None) -> list[str]:
    """``"crf23,half_res"`` -> the names; None or ``"all"`` -> every perturbation."""
    if text is None or text.strip() in ("", "all"):
        return list(PERTURBATIONS)
    return [p.strip() for p in text.split(",") if p.strip()]
