"""Branches learned by a statistics model (:class:`mmdf.stats.model.StatsModel`) on hand-made features.

On a few hundred clips a CNN from scratch learns less than a linear or tree
model on a few hundred well-chosen numbers of the same cached arrays; these
branches give those numbers' model the same k-fold outputs as every other
branch (OOF for train clips, fold means for val/test, NaN with the status
where the modality is missing), so the stacker takes them like any branch.
A fold's model is chosen by nested CV on that fold's training rows only and
saved as JSON (``fold_<k>/model.json``): nothing is pickled.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from mmdf.data.kinds import load_kinds
from mmdf.errors import MmdfError
from mmdf.figures import plot_by_kind
from mmdf.files import atomic_write
from mmdf.prepare.cache import cache_root
from mmdf.stats.table import stats_table
from mmdf.train.branches.base import Branch

log = logging.getLogger(__name__)

MODEL_FILE = "model.json"
FEATURES_FIGURE = "features_by_kind.png"


@dataclass
class StatsBranchConfig:
    """The statistics model: candidates compared by nested CV on each fold's training rows."""

    # simplest first: a later one is chosen only when it beats every earlier one by more than the
    # outer folds' noise (one standard error); "groups" needs a branch that groups its features
    candidates: list[str] = field(default_factory=lambda: ["logistic", "groups", "lightgbm"])
    selection: str = "log_loss"  # outer score of the nested CV: log_loss or roc_auc
    outer_splits: int = 3  # nested CV inside a fold's training rows
    inner_splits: int = 3  # tuning (C, rounds) inside each outer training part


class StatsBranch(Branch):
    """A branch whose items are one row of statistics per clip (``stats_kind`` of :mod:`mmdf.stats.table`)."""

    stats_kind: ClassVar[str]
    config_cls = StatsBranchConfig

    def features(self, cfg, rows: pd.DataFrame, cache: bool = True) -> pd.DataFrame:
        """The statistics of ``rows`` (NaN rows where unusable), cached beside the prepared features."""
        cache_file = cache_root(cfg) / "stats" / f"{self.name}.parquet" if cache else None
        table = stats_table(rows, self.stats_kind, cfg.prepare, cache_file, progress=cfg.train.progress)
        return self.model_inputs(table.drop(columns=["split", "video_name"]))

    def model_inputs(self, table: pd.DataFrame) -> pd.DataFrame:
        """The columns the model learns from (all of them by default)."""
        return table

    def feature_groups(self, columns) -> dict[str, list[str]]:
        """Group name -> its columns, for the ``groups`` candidate; none by default."""
        return {}

    def model(self, section: StatsBranchConfig, seed: int, columns=()):
        # deferred: scikit-learn takes seconds to import, and every config load (and `mmdf --help`) loads this module
        from mmdf.stats.model import StatsModel

        return StatsModel(candidates=tuple(section.candidates), selection=section.selection,
                          outer_splits=section.outer_splits, inner_splits=section.inner_splits, random_state=seed,
                          groups=self.feature_groups(columns) or None)

    def train_fold(self, job) -> None:
        """Fit on the fold's training rows, score its held-out rows and every val/test row."""
        from mmdf.train.loop import PRED_FILE, check_classes, write_csv  # deferred: the loop imports torch

        check_classes(job)
        X = self.features(job.cfg, pd.concat([job.fit, job.held, job.others]))  # the same rows every fold
        section = self.section(job.cfg.train)
        model = self.model(section, job.cfg.seed + 1000 * job.k, X.columns).fit(
            X.loc[job.fit.index], job.fit["target"].astype(int).to_numpy())
        scored = pd.concat([job.held, job.others])
        prob = model.predict_proba(X.loc[scored.index])[:, 1]
        if job.rt.dist.is_main:
            job.fold_dir.mkdir(parents=True, exist_ok=True)
            with atomic_write(job.fold_dir / MODEL_FILE) as tmp:
                tmp.write_text(json.dumps(model.to_dict()))
            log.info("%s fold %d: %s (%s)", self.name, job.k, model.choice_,
                     ", ".join(f"{c} AUC {s['roc_auc']:.3f} log-loss {s['log_loss']:.3f}"
                               for c, s in model.scores_.items()) or "the only candidate")
            if model.choice_ == "groups":
                log.info("%s fold %d: group weights %s", self.name, job.k, ", ".join(
                    f"{g['name']} {w:.2f}" for g, w in zip(model.state_["groups"], model.state_["weights"])))
            write_csv(pd.DataFrame({"video_name": scored["video_name"].to_numpy(),
                                    "split": scored["split"].to_numpy(), "fold": job.k, "prob": prob}),
                      job.fold_dir / PRED_FILE)

    def trained(self, branch_dir, cfg) -> "TrainedStats":
        return TrainedStats(self, Path(branch_dir), cfg)

    report_features: ClassVar[tuple[str, ...]] = ()  # features whose distributions by kind of fake are drawn

    def describe_run(self, cfg, manifest: pd.DataFrame, out: Path) -> None:
        """``features_by_kind.png``: the :attr:`report_features` of train and val clips, per kind of fake."""
        kinds = load_kinds(cfg.data)
        if not self.report_features or kinds is None:
            return
        rows = manifest[manifest["split"].isin(["train", "val"])]
        table = self.features(cfg, rows)
        kind = [kinds.get(sp, pd.Series(dtype=str)).get(v) for sp, v in zip(rows["split"], rows["video_name"])]
        plot_by_kind(table[list(self.report_features)].assign(kind=kind), out / FEATURES_FIGURE)


class TrainedStats:
    """A finished statistics branch: its fold models, scoring prepared clips with their mean."""

    def __init__(self, branch: StatsBranch, branch_dir: Path, cfg):
        from mmdf.stats.model import StatsModel  # deferred: scikit-learn (see StatsBranch.model)

        files = sorted(branch_dir.glob(f"fold_*/{MODEL_FILE}"))
        if not files or not (branch_dir / "config.yaml").is_file():
            raise MmdfError(f"no trained branch in {branch_dir} (expected config.yaml and fold_*/{MODEL_FILE}); "
                            f"run `mmdf train {branch.name} --config ...` first")
        self.branch, self.dir = branch, branch_dir
        self.cfg = cfg  # the run config the branch was trained with (its config.yaml)
        self.models = [StatsModel.from_dict(json.loads(f.read_text())) for f in files]

    def score(self, manifest_rows: pd.DataFrame) -> pd.DataFrame:
        """``video_name, prob, status`` per row: mean fold probability, NaN where the modality is unusable."""
        return self.branch.scored(manifest_rows, self._mean_prob)

    def _mean_prob(self, rows: pd.DataFrame) -> np.ndarray:
        X = self.branch.features(self.cfg, rows, cache=False)
        return np.mean([m.predict_proba(X)[:, 1] for m in self.models], axis=0)
