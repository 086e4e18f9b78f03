"""The fitted stacker on disk, so that `mmdf predict` can score new clips with it.

``stack/stacker.pkl`` holds the chosen method's estimator (fitted on all train
OOF), the LightGBM fallback for clips no branch scored, with the feature list and branch names it expects; ``stack/stacker.json``
says the same in readable form.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from mmdf.data.labels import NAME_COL
from mmdf.errors import MmdfError
from mmdf.stack.baselines import with_fallback
from mmdf.stack.features import build_features
from mmdf.stack.inputs import BranchOutputs

PICKLE_NAME = "stacker.pkl"
JSON_NAME = "stacker.json"


def save_stacker(stack_dir: Path, *, method: str, estimator, fallback, features: list[str],
                 branches: dict[str, str], use_metadata: bool) -> Path:
    info = {"method": method, "features": features, "branches": branches, "use_metadata": use_metadata}
    (stack_dir / JSON_NAME).write_text(json.dumps(info, indent=2))
    path = stack_dir / PICKLE_NAME
    with path.open("wb") as fh:
        pickle.dump({**info, "estimator": estimator, "fallback": fallback}, fh)
    return path


def load_stacker(stack_dir: str | Path) -> dict:
    """``{method, features, branches, use_metadata, estimator, fallback}``; raises if the run has no stacker."""
    path = Path(stack_dir) / PICKLE_NAME
    if not path.is_file():
        raise MmdfError(f"{path} not found; run `mmdf stack --config ...` for this run first")
    with path.open("rb") as fh:
        return pickle.load(fh)


def predict_with_stacker(stacker: dict, branch_preds: dict[str, pd.DataFrame],
                         manifest_rows: pd.DataFrame | None, split: str = "test") -> pd.DataFrame:
    """Score clips from their branch predictions (``video_name, prob, status`` per branch).

    ``manifest_rows``: the clips' manifest rows with ``split`` set to ``split``
    (needed when the stacker uses metadata). Returns ``video_name, prob, n_branches_scored``
    in the order of the first branch's rows.
    """
    missing = [b for b in stacker["branches"] if b not in branch_preds]
    if missing:
        raise MmdfError(f"the stacker needs predictions of branch(es) {', '.join(missing)}")
    branches = [BranchOutputs(name=b, dir=Path("."), preds={split: branch_preds[b]}, folds=None)
                for b in stacker["branches"]]
    names = branch_preds[branches[0].name][NAME_COL].tolist()
    X = build_features(branches, split, names, manifest_rows if stacker["use_metadata"] else None)
    X = X.reindex(columns=stacker["features"])
    n_scored = X["n_branches_scored"].to_numpy()
    p = with_fallback(stacker["estimator"].predict_proba(X)[:, 1],
                      stacker["fallback"].predict_proba(X)[:, 1], n_scored)
    return pd.DataFrame({NAME_COL: names, "prob": np.clip(p, 0, 1),
                         "n_branches_scored": n_scored.astype(int)})
