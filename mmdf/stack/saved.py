"""The fitted stacker on disk as plain data, so that `mmdf predict` can score new clips with it.

``stack/stacker.json`` holds the chosen method and the LightGBM fallback for
clips no branch scored, each as its fold models (:mod:`mmdf.stack.ensemble`),
each of those as its class name, parameters and fitted state in plain
numbers (LightGBM's state is its own model text), plus the feature
list and the branch folders (relative to the run folder). Nothing is
unpickled: a run folder made by someone else is safe to open.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mmdf.data.labels import NAME_COL
from mmdf.errors import MmdfError
from mmdf.files import atomic_write
from mmdf.stack.ensemble import FoldEnsemble
from mmdf.stack.baselines import BranchScore, LogisticStacker, MeanScore, RankMeanScore, with_fallback
from mmdf.stack.features import build_features
from mmdf.stack.inputs import BranchOutputs
from mmdf.stack.stacker import LGBMStacker

STACKER_FILE = "stacker.json"
FORMAT = 3
ESTIMATORS = {cls.__name__: cls for cls in (BranchScore, MeanScore, RankMeanScore, LogisticStacker, LGBMStacker)}


def _plain(est) -> dict:
    if isinstance(est, FoldEnsemble):
        return {"class": "FoldEnsemble", "members": [_plain(m) for m in est.members]}
    params = est.plain_params() if hasattr(est, "plain_params") else {
        k: list(v) if isinstance(v, tuple) else v for k, v in est.get_params(deep=False).items()}
    return {"class": type(est).__name__, "params": params, "state": est.to_dict()}


def _rebuild(entry: dict, path: Path):
    if entry.get("class") == "FoldEnsemble":
        return FoldEnsemble([_rebuild(m, path) for m in entry["members"]])
    cls = ESTIMATORS.get(entry.get("class"))
    if cls is None:
        raise MmdfError(f"{path}: unknown stacking method class {entry.get('class')!r}; "
                        f"re-run `mmdf stack --force` with this version of mmdf")
    params = {k: tuple(v) if isinstance(v, list) and k == "branches" else v for k, v in entry["params"].items()}
    return cls.from_dict(params, entry["state"])


def save_stacker(stack_dir: Path, *, method: str, estimator, fallback, features: list[str],
                 branches: dict[str, str], use_metadata: bool) -> Path:
    """Write ``stacker.json`` atomically; ``branches`` are folders relative to the run folder."""
    info = {"format": FORMAT, "method": method, "features": features, "branches": branches,
            "use_metadata": use_metadata, "estimator": _plain(estimator), "fallback": _plain(fallback)}
    path = Path(stack_dir) / STACKER_FILE
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(info, indent=1))
    return path


def load_stacker(stack_dir: str | Path) -> dict:
    """``{method, features, branches, use_metadata, estimator, fallback}`` with fitted estimators."""
    path = Path(stack_dir) / STACKER_FILE
    if not path.is_file():
        old = Path(stack_dir) / "stacker.pkl"
        hint = (" (this run was stacked by an older mmdf that pickled the stacker, which is not loaded "
                "since it could run code)") if old.is_file() else ""
        raise MmdfError(f"{path} not found{hint}; run `mmdf stack --force --config ...` for this run")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MmdfError(f"{path}: not a readable stacker file ({exc}); re-run `mmdf stack --force`") from None
    if info.get("format") != FORMAT:
        raise MmdfError(f"{path} is of format {info.get('format')!r}, this mmdf reads format {FORMAT}; "
                        "re-run `mmdf stack --force --config ...` for this run")
    info["estimator"] = _rebuild(info["estimator"], path)
    info["fallback"] = _rebuild(info["fallback"], path)
    return info


def stacker_features(stacker: dict, branch_preds: dict[str, pd.DataFrame],
                     manifest_rows: pd.DataFrame | None, split: str = "test") -> pd.DataFrame:
    """The stacker's feature frame (index ``video_name``, its stored columns) from branch predictions."""
    missing = [b for b in stacker["branches"] if b not in branch_preds]
    if missing:
        raise MmdfError(f"the stacker needs predictions of branch(es) {', '.join(missing)}")
    branches = [BranchOutputs(name=b, dir=Path("."), preds={split: branch_preds[b]}, folds=None)
                for b in stacker["branches"]]
    names = branch_preds[branches[0].name][NAME_COL].tolist()
    X = build_features(branches, split, names, manifest_rows if stacker["use_metadata"] else None)
    return X.reindex(columns=stacker["features"])


def predict_with_stacker(stacker: dict, branch_preds: dict[str, pd.DataFrame],
                         manifest_rows: pd.DataFrame | None, split: str = "test") -> pd.DataFrame:
    """Score clips from their branch predictions (``video_name, prob, status`` per branch).

    ``manifest_rows``: the clips' manifest rows with ``split`` set to ``split``
    (needed when the stacker uses metadata). Returns ``video_name, prob, n_branches_scored``
    in the order of the first branch's rows.
    """
    X = stacker_features(stacker, branch_preds, manifest_rows, split)
    names = X.index.tolist()
    n_scored = X["n_branches_scored"].to_numpy()
    p = with_fallback(stacker["estimator"].predict_proba(X)[:, 1],
                      stacker["fallback"].predict_proba(X)[:, 1], n_scored)
    return pd.DataFrame({NAME_COL: names, "prob": np.clip(p, 0, 1),
                         "n_branches_scored": n_scored.astype(int)})
