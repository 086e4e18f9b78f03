"""The config of a run: one typed section per component, assembled above them all.

:mod:`mmdf.config` loads and checks YAML into any dataclass and knows no
component; this module names the sections a run has (``data``, ``folds``,
``prepare``, ``train`` with one section per registered branch, ``stack``)
and is what the commands load. The components below take the built object
and read the sections they use.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from mmdf.config import TYPE_AT_BUILD, load
from mmdf.data.config import DataConfig, FoldConfig
from mmdf.prepare.config import PrepareConfig
from mmdf.stack.config import StackConfig
from mmdf.train.branches import train_config_type
from mmdf.train.config import TrainConfig


@dataclass
class Config:
    """Everything one run needs; each tool reads the sections it uses."""

    experiment: str = "default"  # run outputs go to <runs_dir>/<experiment>/
    runs_dir: str = "runs"
    seed: int = 42
    data: DataConfig = field(default_factory=DataConfig)
    folds: FoldConfig = field(default_factory=FoldConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    train: TrainConfig = field(default_factory=lambda: train_config_type()(),  # with branch sections
                               metadata={TYPE_AT_BUILD: train_config_type})
    stack: StackConfig = field(default_factory=StackConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.experiment


def load_config(path: str | Path | None = None, overrides: Iterable[str] = (),
                updates: Iterable[tuple[Mapping, str]] = ()) -> Config:
    """Load ``path`` (with its bases), apply ``key=value`` overrides, build a :class:`Config`.

    ``updates`` are ``(mapping, where)`` pairs merged after the file and before
    the overrides (an experiment's variants); their keys may be dotted
    (``{'train.epochs': 3}``) and ``where`` names them in error messages.
    """
    return load(Config, path, overrides, updates)


def config_from_args(args: argparse.Namespace) -> Config:
    """The config of ``--config FILE key=value ...`` (:func:`mmdf.config.add_config_arguments`)."""
    return load_config(args.config, args.overrides)
