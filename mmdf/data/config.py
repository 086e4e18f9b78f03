"""Where the clips and label files are, and how train clips are split into folds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "val", "test")


@dataclass
class DataConfig:
    """An FFDV-layout dataset: a clip folder and a label file per split.

    Paths are relative to ``root`` unless absolute. The test split's list may
    hold names only; set ``test_list: null`` where there is no test split.
    """

    root: str = "data/ffdv"
    train_labels: str = "trainset_label.txt"
    train_clips: str = "trainset"
    val_labels: str | None = "valset_label.txt"
    val_clips: str = "valset"
    test_list: str | None = "testset_list.txt"
    test_clips: str = "testset"
    cache_dir: str = "cache"  # preprocessed features; relative to the working directory

    def split_paths(self, split: str) -> tuple[Path | None, Path]:
        """(label file or None, clip folder) of ``split``."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        labels = {"train": self.train_labels, "val": self.val_labels, "test": self.test_list}[split]
        clips = {"train": self.train_clips, "val": self.val_clips, "test": self.test_clips}[split]
        root = Path(self.root)
        return (root / labels if labels else None), root / clips


@dataclass
class FoldConfig:
    """K-fold split of the train clips, shared by every branch and the stacker."""

    n_splits: int = 5
    seed: int = 42
    # Optional grouping (e.g. a source identity) so one group never spans folds:
    # a CSV with columns video_name and ``group_column``.
    groups_file: str | None = None
    group_column: str = "group"

    def __post_init__(self) -> None:
        if self.n_splits < 2:
            raise ValueError(f"folds.n_splits must be at least 2, got {self.n_splits}")
