"""What a branch is: one modality's cached feature, how a fold learns from it, how it scores clips.

The k-fold trainer, prediction, the stacker, the experiment runner and the
benchmarks take a :class:`Branch` object and never name a branch, so adding
one is adding one module with one such object (and its config section, the
``config_cls`` dataclass, read from ``train.<name>``) and registering it in
:mod:`mmdf.train.branches`. :class:`~mmdf.train.branches.torch_branch.TorchBranch`
is a branch learned by a network with the shared epoch loop; a branch with another
learner (the statistics models) overrides :meth:`Branch.train_fold` and :meth:`Branch.trained`.

Nothing here imports the training machinery: the loop, the scorer and the
k-fold trainer take a :class:`Branch` and import this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mmdf.errors import MmdfError, list_offenders


@dataclass
class Segments:
    """One branch's scores of parts of one clip in time (seconds on the clip's clock): what a page's
    timeline shows and ``segments.csv`` holds. ``score``: the probability of each part, the mean of the
    fold models'; ``how``: how the parts were scored, in words; ``images``: (N, S, S, 3) uint8, one
    per part where the parts are pictures (face crops); ``curve``: (x, y, label) of a diagnostic curve."""

    start_s: np.ndarray
    end_s: np.ndarray
    score: np.ndarray
    how: str
    images: np.ndarray | None = None
    curve: tuple[np.ndarray, np.ndarray, str] | None = None


class Branch:
    """A modality learned on its own, k-fold, from one cached feature per clip.

    Subclasses set the class attributes and say how a fold is trained
    (:meth:`train_fold`) and how a finished run scores new clips (:meth:`trained`).
    """

    name: ClassVar[str]
    describe: ClassVar[str]  # for --help: what the branch looks at
    status_col: ClassVar[str]  # manifest column, 'ok' where the modality is usable
    file_col: ClassVar[str]  # manifest column naming the cached feature file
    prepare_keys: ClassVar[tuple[str, ...]]  # prepare.<key> sections its feature depends on
    config_cls: ClassVar[type]  # its section, train.<name>
    self_supervised: ClassVar[bool] = False  # learns from real clips only (see TorchBranch.training_rows)
    modality: ClassVar[str] = ""  # what its segments localise (audio, visual, sync); "" = clip scores only

    def section(self, train_cfg) -> Any:
        """This branch's config section of a :class:`mmdf.train.config.TrainConfig`."""
        return train_cfg.section(self.name)

    def usable(self, rows: pd.DataFrame) -> np.ndarray:
        """Rows whose modality is usable; a usable row whose cached file is gone is an error."""
        missing_cols = [c for c in ("video_name", self.status_col, self.file_col) if c not in rows]
        if missing_cols:
            raise MmdfError(
                f"the manifest lacks column(s) {', '.join(missing_cols)} needed by the {self.name} "
                "branch; re-run `mmdf prepare --config ...`"
            )
        ok = (rows[self.status_col].astype(str) == "ok").to_numpy()
        files = rows[self.file_col].fillna("").astype(str)
        absent = ok & ~files.map(lambda f: bool(f) and Path(f).is_file()).to_numpy()
        if absent.any():
            raise MmdfError(
                f"{int(absent.sum())} clip(s) have {self.status_col}=ok but no cached file in "
                f"'{self.file_col}': {list_offenders(rows.loc[absent, 'video_name'].tolist())}; "
                "the cache is incomplete: re-run `mmdf prepare --config ...`"
            )
        return ok

    def scored(self, manifest_rows: pd.DataFrame, probs_of) -> pd.DataFrame:
        """``video_name, prob, status`` per row: ``probs_of(usable rows)``, NaN where the modality is unusable."""
        rows = manifest_rows.reset_index(drop=True)
        ok = self.usable(rows)
        prob = np.full(len(rows), np.nan)
        if ok.any():
            prob[ok] = probs_of(rows[ok])
        return pd.DataFrame({"video_name": rows["video_name"].to_numpy(), "prob": prob,
                             "status": rows[self.status_col].astype(str).to_numpy()})

    def train_fold(self, job) -> None:
        """Train fold ``job.k`` (a :class:`mmdf.train.loop.FoldJob`) and write its ``predictions.csv``."""
        raise NotImplementedError

    def trained(self, branch_dir, cfg):
        """The finished branch run in ``branch_dir``, loaded once; ``.score(rows)`` scores prepared clips.

        ``cfg``: the run config the branch was trained with (its ``config.yaml``, loaded by the caller).
        """
        raise NotImplementedError

    def segments(self, trained, row: pd.Series) -> Segments | None:
        """Scores of parts of one clip (a usable manifest row) in time by ``trained`` (what
        :meth:`trained` returned); None where the branch scores whole clips only."""
        return None

    def describe_run(self, cfg, manifest: pd.DataFrame, out: Path) -> None:
        """Extra figures of a finished run in ``out`` (none by default); the stack report links them."""


def targets_of(rows: pd.DataFrame) -> np.ndarray:
    """Float targets of manifest rows, NaN where unknown (test clips)."""
    if "target" not in rows:
        return np.full(len(rows), np.nan, dtype=np.float32)
    return pd.to_numeric(rows["target"], errors="coerce").astype("float32").to_numpy()


def channel_column(values: list[float]):
    """(C, 1, 1) tensor of per-channel values, broadcasting over a (C, H, W) image."""
    import torch  # deferred: the branch modules load with every config, torch only to train or score

    return torch.tensor(values).view(-1, 1, 1)


def to_float(x, mean, std):
    """uint8 tensor -> normalised float, as the backbone was trained."""
    return (x.float() / 255.0 - mean) / std


def clip_span(row: pd.Series) -> tuple[float, float] | None:
    """The used span of a manifest row's clip when it is not the whole clip (long clips), else None."""
    start, end, duration = (float(row.get(k, np.nan)) for k in ("span_start", "span_end", "duration"))
    if not (np.isfinite(start) and np.isfinite(end)) or (start <= 0 and (not np.isfinite(duration) or end >= duration)):
        return None
    return start, end
