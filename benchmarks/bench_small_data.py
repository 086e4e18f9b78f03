"""The peer figure for the audio branches on a small set: a logistic regression on per-band mel statistics.

    python benchmarks/bench_small_data.py --config configs/demo/audio.yaml \\
        data.root=../shared/realdata/voice_conversion data.test_list=null [runs_dir=...]

Reads the prepared cache of the config (run `mmdf prepare` first), fits a
standardised logistic regression on the mean and standard deviation over time
of every mel row of the cached images (train split), scores the val split and
the train split out of fold (the run's folds.csv, else 3 stratified folds), and
prints it beside the OOF and val AUC of every branch the run has trained: a
branch that does not beat this baseline is not using its cache.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mmdf.config import add_config_arguments
from mmdf.run_config import config_from_args
from mmdf.metrics import TPR_KEY, score_report
from mmdf.prepare.manifest import load_manifest


def band_stats(files: list[str]) -> np.ndarray:
    """(clips, 2 * rows): mean and std over time of every row of each cached mel image."""
    mels = [np.load(f).astype(np.float32) / 255.0 for f in files]
    return np.stack([np.concatenate([m.mean(axis=1), m.std(axis=1)]) for m in mels])


def peer_baseline(manifest: pd.DataFrame, folds: pd.Series | None, seed: int) -> dict:
    """OOF (train) and val scores of the logistic regression on band statistics."""
    ok = manifest[manifest["audio_status"] == "ok"]
    train, val = ok[ok["split"] == "train"], ok[ok["split"] == "val"]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    X, y = band_stats(train["mel_file"].tolist()), train["target"].astype(int).to_numpy()
    groups = folds.reindex(train["video_name"]).to_numpy() if folds is not None else None
    cv = StratifiedKFold(3, shuffle=True, random_state=seed) if groups is None else \
        [(np.flatnonzero(groups != k), np.flatnonzero(groups == k)) for k in np.unique(groups)]
    oof = cross_val_predict(model, X, y, cv=cv, method="predict_proba")[:, 1]
    out = {"oof": score_report(y, oof)}
    if len(val) and val["target"].notna().all():
        fitted = model.fit(X, y)
        out["val"] = score_report(val["target"].astype(int), fitted.predict_proba(band_stats(val["mel_file"].tolist()))[:, 1])
    return out


def branch_rows(run_dir) -> list[dict]:
    rows = []
    for path in sorted(run_dir.glob("*/metrics.json")):
        m = json.loads(path.read_text())
        if "branch" in m:
            rows.append({"model": f"branch {m['branch']}", "oof_auc": (m.get("oof") or {}).get("auc"),
                         "val_auc": (m.get("val") or {}).get("auc")})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    args = parser.parse_intermixed_args()
    cfg = config_from_args(args)
    folds_file = cfg.run_dir / "folds.csv"
    folds = pd.read_csv(folds_file).set_index("video_name")["fold"] if folds_file.is_file() else None
    peer = peer_baseline(load_manifest(cfg), folds, cfg.seed)
    rows = [{"model": "peer: logistic on per-band mel mean/std", "oof_auc": peer["oof"]["auc"],
             f"oof_{TPR_KEY}": peer["oof"][TPR_KEY], "val_auc": peer.get("val", {}).get("auc")}]
    print(pd.DataFrame(rows + branch_rows(cfg.run_dir)).to_string(index=False, float_format="%.4f"))


if __name__ == "__main__":
    main()
