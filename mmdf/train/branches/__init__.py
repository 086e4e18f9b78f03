"""The branches a run can train, by name: a dict of :class:`~mmdf.train.branches.base.Branch` objects.

Adding a branch: write a module holding one ``Branch`` subclass instance
(its config dataclass beside it) and add it here, or call
:func:`register_branch` from your own code (the tests add a toy branch so).
"""

from __future__ import annotations

import functools
from dataclasses import field, make_dataclass

from mmdf.errors import MmdfError
from mmdf.train.branches import audio, audio_stats, sync, sync_stats, visual, visual_stats
from mmdf.train.branches.base import Branch
from mmdf.train.config import TrainConfig

# in pipeline order; the built-in branch modules import no torch at the top, so loading them is cheap
_BRANCHES: dict[str, Branch] = {m.BRANCH.name: m.BRANCH
                                for m in (audio, visual, sync, audio_stats, visual_stats, sync_stats)}


def _builtin() -> dict[str, Branch]:
    return _BRANCHES


def all_branches() -> dict[str, Branch]:
    """Every registered branch, by name, in pipeline order."""
    return dict(_builtin())


def get_branch(name: str) -> Branch:
    branches = _builtin()
    if name not in branches:
        raise MmdfError(f"unknown branch '{name}'; the branches are: {', '.join(branches)}")
    return branches[name]


def register_branch(branch: Branch) -> Branch:
    """Make ``branch`` trainable, stackable and configurable (``train.<name>``)."""
    _builtin()[branch.name] = branch
    return branch


def unregister_branch(name: str) -> None:
    _builtin().pop(name, None)


def train_config_type() -> type:
    """:class:`~mmdf.train.config.TrainConfig` with one field per registered branch (``train.<name>``)."""
    return _with_sections(tuple((b.name, b.config_cls) for b in all_branches().values()))


@functools.cache
def _with_sections(sections: tuple[tuple[str, type], ...]) -> type:
    fields = [(name, cls, field(default_factory=cls)) for name, cls in sections]
    cls = make_dataclass("TrainConfig", fields, bases=(TrainConfig,))
    cls.__module__ = TrainConfig.__module__
    return cls
