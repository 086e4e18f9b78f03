"""The branches a run can train, by name: a dict of :class:`~mmdf.train.branches.base.Branch` objects.

Adding a branch: write a module holding one ``Branch`` subclass instance
(its config dataclass beside it) and add it here, or call
:func:`register_branch` from your own code (the tests add a toy branch so).
"""

from __future__ import annotations

from mmdf.errors import MmdfError
from mmdf.train.branches.base import Branch

_BRANCHES: dict[str, Branch] = {}


def _builtin() -> dict[str, Branch]:
    if not _BRANCHES:
        from mmdf.train.branches import audio, audio_stats, sync, sync_stats, visual, visual_stats

        for module in (audio, visual, sync, audio_stats, visual_stats, sync_stats):
            _BRANCHES[module.BRANCH.name] = module.BRANCH
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
