"""What a branch is: one modality's cached feature, how a fold learns from it, how it scores clips.

The k-fold trainer, prediction, the stacker, the experiment runner and the
benchmarks take a :class:`Branch` object and never name a branch, so adding
one is adding one module with one such object (and its config section, the
``config_cls`` dataclass, read from ``train.<name>``) and registering it in
:mod:`mmdf.train.branches`. :class:`TorchBranch` is a branch learned by a
timm CNN with the shared epoch loop; a branch with another learner (the
statistics models) overrides :meth:`Branch.train_fold` and :meth:`Branch.trained`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mmdf.errors import MmdfError, list_offenders


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

    def trained(self, branch_dir):
        """The finished branch run in ``branch_dir``, loaded once; ``.score(rows)`` scores prepared clips."""
        raise NotImplementedError

    def describe_run(self, cfg, manifest: pd.DataFrame, out: Path) -> None:
        """Extra figures of a finished run in ``out`` (none by default); the stack report links them."""



class TorchBranch(Branch):
    """A branch learned by a timm CNN (``section.model``) with the shared epoch loop.

    Subclasses implement :meth:`dataset`; the defaults of the other methods
    suit a branch with one item per clip.
    """

    def train_fold(self, job) -> None:
        from mmdf.train.loop import train_fold

        train_fold(job)

    def create_model(self, model_cfg, prepare=None):
        """The network of ``model_cfg`` (``section.model``; ``prepare``: the run's prepare settings)."""
        from mmdf.train.models import create_model

        return create_model(model_cfg, key=f"train.{self.name}.model")

    def training_rows(self, fit: pd.DataFrame) -> pd.DataFrame:
        """The fold's training rows the model learns from (all of them by default)."""
        return fit

    def trained(self, branch_dir):
        from mmdf.train.trained import TrainedBranch

        return TrainedBranch(branch_dir)

    def normalization(self, model, section, fit_rows: pd.DataFrame) -> tuple[list[float], list[float]]:
        """Per-channel mean and std the inputs are standardised with: the backbone's own by default."""
        from mmdf.train.models import normalization

        return normalization(model, section.model.in_chans)

    def dataset(self, rows: pd.DataFrame, section, mean: list[float], std: list[float], train: bool):
        """A map-style dataset of ``(x float32 tensor, target, clip index)`` over usable ``rows``."""
        raise NotImplementedError

    def tta_views(self, x, section) -> list:
        """The test-time views of a batch (the batch itself by default)."""
        return [x]

    def aggregate(self, item_logits: np.ndarray, item_clip: np.ndarray, section) -> pd.Series:
        """Clip probability per clip id from item logits (mean logit by default)."""
        from mmdf.train.aggregate import aggregate_clips

        return aggregate_clips(item_logits, item_clip, "mean_logit")

def targets_of(rows: pd.DataFrame) -> np.ndarray:
    """Float targets of manifest rows, NaN where unknown (test clips)."""
    if "target" not in rows:
        return np.full(len(rows), np.nan, dtype=np.float32)
    return pd.to_numeric(rows["target"], errors="coerce").astype("float32").to_numpy()


def channel_column(values: list[float]):
    """(C, 1, 1) tensor of per-channel values, broadcasting over a (C, H, W) image."""
    import torch

    return torch.tensor(values).view(-1, 1, 1)


def to_float(x, mean, std):
    """uint8 tensor -> normalised float, as the backbone was trained."""
    return (x.float() / 255.0 - mean) / std
