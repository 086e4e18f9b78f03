"""Which audio feature groups carry over to unseen speakers and generators: one logistic regression per group.

    python benchmarks/bench_feature_groups.py --config configs/demo/data.yaml \\
        data.root=../shared/realdata/tts_speech data.test_list=null [folds.groups_file=... folds.group_column=speaker]

Reads the prepared cache of the config (run `mmdf prepare` first) and the
audio statistics of :mod:`mmdf.stats.audio`. For each feature group, every
group together (one logistic regression, and the ``groups`` model that
``audio_stats`` uses) and the peer baseline (per-band mel mean/std): the OOF
AUC on the config's folds (``folds.groups_file`` holds speakers out) and the
val AUC of the model fitted on all train clips. A group whose OOF is high and
val is not has learnt the training speakers or generators, not the fake.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from bench_small_data import band_stats
from sklearn.metrics import roc_auc_score

from mmdf.config import add_config_arguments
from mmdf.run_config import config_from_args
from mmdf.data.folds import describe_folds, make_folds
from mmdf.prepare.manifest import load_manifest
from mmdf.stats.audio import feature_groups
from mmdf.stats.model import fit_candidate, predict_state
from mmdf.stats.table import stats_table

SETTINGS = {"inner_splits": 3, "c_grid": [0.003, 0.01, 0.03, 0.1, 0.3, 1.0], "random_state": 0}


def score(candidate: str, X: np.ndarray, y: np.ndarray, train: np.ndarray, fold: np.ndarray, groups=()) -> tuple:
    """(OOF AUC on the folds, val AUC) of one candidate of :mod:`mmdf.stats.model` on the columns of X."""
    settings = {**SETTINGS, "groups": list(groups)}
    oof = np.full(train.sum(), np.nan)
    Xt, yt = X[train], y[train]
    for k in np.unique(fold):
        held = fold == k
        oof[held] = predict_state(fit_candidate(candidate, Xt[~held], yt[~held], settings), Xt[held])
    val = ~train
    p = predict_state(fit_candidate(candidate, Xt, yt, settings), X[val])
    return roc_auc_score(yt, oof), roc_auc_score(y[val], p) if val.any() else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    cfg = config_from_args(parser.parse_intermixed_args())
    manifest = load_manifest(cfg)
    rows = manifest[(manifest["audio_status"] == "ok") & manifest["split"].isin(["train", "val"])]
    table = stats_table(rows, "audio", cfg.prepare, progress=False).drop(columns=["split", "video_name"])
    y, train = rows["target"].astype(int).to_numpy(), (rows["split"] == "train").to_numpy()
    fold = make_folds(rows[train], cfg.folds)["fold"].to_numpy()
    groups = feature_groups(table.columns)
    out = []
    for name, cols in groups.items():
        out.append((f"group {name} ({len(cols)})", *score("logistic", table[cols].to_numpy(float), y, train, fold)))
    X = table.to_numpy(float)
    out.append(("every feature, one logistic", *score("logistic", X, y, train, fold)))
    index = [[g, [list(table.columns).index(c) for c in cols]] for g, cols in groups.items()]
    out.append(("every group weighed (audio_stats)", *score("groups", X, y, train, fold, index)))
    out.append(("peer: per-band mel mean/std", *score("logistic", band_stats(rows["mel_file"].tolist()), y, train, fold)))
    print(f"{cfg.data.root}: {describe_folds(cfg.folds)}")
    print(pd.DataFrame(out, columns=["model", "oof_auc", "val_auc"]).to_string(index=False, float_format="%.3f"))


if __name__ == "__main__":
    main()
