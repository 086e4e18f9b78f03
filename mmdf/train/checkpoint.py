"""Checkpoints as plain tensors and plain Python types, loaded with ``weights_only=True``.

A run folder may come from someone else: ``torch.load(weights_only=False)``
would run whatever code a crafted file carries. Everything mmdf stores in a
checkpoint (state dicts, the model config as a dict, numbers, the fold's
state as a dict) loads under PyTorch's safe unpickler.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from mmdf.errors import MmdfError
from mmdf.files import atomic_write


def save_checkpoint(path: Path, obj: dict) -> None:
    """Write atomically, so a kill during the write never leaves a truncated checkpoint."""
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint's dict, refusing any file that needs code to load."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise MmdfError(
            f"{path}: refused to load: it holds objects beyond tensors and plain types ({first}); "
            "loading it could run code. If the run is old or not yours, retrain the branch "
            "(`mmdf train <branch> --force`)"
        ) from None
    except (OSError, RuntimeError, EOFError) as exc:
        raise MmdfError(f"{path}: cannot read the checkpoint ({type(exc).__name__}: {exc})") from None
