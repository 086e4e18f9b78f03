"""A branch learned by a network with the shared epoch loop (:mod:`mmdf.train.loop`).

The branch modules are loaded with every config (their sections are part of
``train``), so the machinery that imports torch and timm (the loop, the
models, :class:`~mmdf.train.trained.TrainedBranch`) is imported where a method
needs it, not at the top.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmdf.train.aggregate import aggregate_clips
from mmdf.train.branches.base import Branch


class TorchBranch(Branch):
    """A branch learned by a timm CNN (``section.model``) with the shared epoch loop.

    Subclasses implement :meth:`dataset`; the defaults of the other methods
    suit a branch with one item per clip.
    """

    def train_fold(self, job) -> None:
        from mmdf.train.loop import train_fold  # deferred, as are the models and TrainedBranch: they import torch

        train_fold(job)

    def create_model(self, model_cfg, prepare=None):
        """The network of ``model_cfg`` (``section.model``; ``prepare``: the run's prepare settings)."""
        from mmdf.train.models import create_model  # deferred: timm and torch

        return create_model(model_cfg, key=f"train.{self.name}.model")

    def training_rows(self, fit: pd.DataFrame) -> pd.DataFrame:
        """The fold's training rows the model learns from (all of them by default)."""
        return fit

    def trained(self, branch_dir, cfg):
        from mmdf.train.trained import TrainedBranch  # deferred: torch

        return TrainedBranch(self, branch_dir, cfg)

    def normalization(self, model, section, fit_rows: pd.DataFrame) -> tuple[list[float], list[float]]:
        """Per-channel mean and std the inputs are standardised with: the backbone's own by default."""
        from mmdf.train.models import normalization  # deferred: timm and torch

        return normalization(model, section.model.in_chans)

    def dataset(self, rows: pd.DataFrame, section, mean: list[float], std: list[float], train: bool):
        """A map-style dataset of ``(x float32 tensor, target, clip index)`` over usable ``rows``."""
        raise NotImplementedError

    def tta_views(self, x, section) -> list:
        """The test-time views of a batch (the batch itself by default)."""
        return [x]

    def aggregate(self, item_logits: np.ndarray, item_clip: np.ndarray, section) -> pd.Series:
        """Clip probability per clip id from item logits (mean logit by default)."""
        return aggregate_clips(item_logits, item_clip, "mean_logit")
