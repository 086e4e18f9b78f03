"""Synthetic branch outputs for the stacker's tests (a manifest and branch prediction files; no media, no training).

Four kinds of clip as in the demo data: real, fake_audio (cloned voice: only the
audio branch sees it), fake_visual (swapped face: only the visual branch sees
it), fake_both. Some clips lack a modality (NaN prob, status no_audio/no_face),
and a few test clips are scored by neither branch (corrupt).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mmdf.run_config import Config, load_config
from mmdf.data.config import FoldConfig
from mmdf.data.folds import make_folds

KINDS = np.array(["real", "fake_audio", "fake_visual", "fake_both"])
KIND_P = [0.5, 0.17, 0.17, 0.16]


def _clips(rng, split: str, n: int) -> pd.DataFrame:
    kind = rng.choice(KINDS, size=n, p=KIND_P)
    df = pd.DataFrame({
        "split": split,
        "video_name": [f"{split}_{i:04d}.mp4" for i in range(n)],
        "kind": kind,
        "target": (kind != "real").astype(int),
    })
    # make sure both classes and all kinds exist even for tiny n
    df.loc[df.index[:4], "kind"] = KINDS
    df["target"] = (df["kind"] != "real").astype(int)
    return df


def _branch_prob(rng, caught: np.ndarray, noise: float) -> np.ndarray:
    z = np.where(caught, 1.5, -1.5) + rng.normal(0, noise, size=len(caught))
    return 1 / (1 + np.exp(-z))


def make_stack_inputs(
    root: str | Path,
    n_train: int = 200,
    n_val: int = 120,
    n_test: int = 60,
    n_splits: int = 5,
    seed: int = 0,
    missing_frac: float = 0.05,
    n_unscored_test: int = 3,
    informative: bool = True,
    overrides: tuple[str, ...] = (),
) -> tuple[Config, pd.DataFrame]:
    """Write label files, folds and both branches' CSVs under ``root``; return (config, manifest).

    ``informative=False`` gives branch probabilities unrelated to the labels
    (to check the stacked estimate does not invent signal).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    clips = pd.concat([_clips(rng, "train", n_train), _clips(rng, "val", n_val), _clips(rng, "test", n_test)],
                      ignore_index=True)

    n = len(clips)
    no_audio = rng.random(n) < missing_frac
    no_face = (rng.random(n) < missing_frac) & ~no_audio
    corrupt = np.zeros(n, dtype=bool)
    test_idx = np.flatnonzero(clips["split"] == "test")
    corrupt[test_idx[-n_unscored_test:] if n_unscored_test else []] = True
    no_audio &= ~corrupt
    no_face &= ~corrupt

    kind = clips["kind"].to_numpy()
    if informative:
        audio = _branch_prob(rng, np.isin(kind, ["fake_audio", "fake_both"]), 1.0)
        visual = _branch_prob(rng, np.isin(kind, ["fake_visual", "fake_both"]), 1.0)
    else:
        audio, visual = rng.random(n), rng.random(n)
    audio_status = np.where(corrupt, "corrupt", np.where(no_audio, "no_audio", "ok"))
    visual_status = np.where(corrupt, "corrupt", np.where(no_face, "no_face", "ok"))
    audio = np.where(audio_status == "ok", audio, np.nan)
    visual = np.where(visual_status == "ok", visual, np.nan)
    status = np.where(corrupt, "corrupt", np.where(no_audio, "no_audio", np.where(no_face, "no_face", "ok")))

    manifest = pd.DataFrame({
        "split": clips["split"],
        "video_name": clips["video_name"],
        "target": pd.array(np.where(clips["split"] == "test", pd.NA, clips["target"]), dtype="Int8"),
        "path": [str(data / f"{s}set" / v) for s, v in zip(clips["split"], clips["video_name"])],
        "status": status,
        "error": np.where(corrupt, "decoder failed", ""),
        "audio_status": audio_status,
        "visual_status": visual_status,
        "duration": np.where(corrupt, np.nan, rng.uniform(2, 10, n)),
        "has_audio": ~(no_audio | corrupt),
        "frames_sampled": np.where(corrupt, 0, 16),
        "frames_with_face": np.where(corrupt | no_face, 0, 16),
        "face_conf_mean": np.where(corrupt | no_face, np.nan, rng.uniform(0.9, 1.0, n)),
        "mel_file": "",
        "faces_file": "",
    })

    train = clips[clips["split"] == "train"]
    val = clips[clips["split"] == "val"]
    test = clips[clips["split"] == "test"]
    train[["video_name", "target"]].to_csv(data / "trainset_label.txt", index=False)
    val[["video_name", "target"]].to_csv(data / "valset_label.txt", index=False)
    test[["video_name"]].to_csv(data / "testset_list.txt", index=False)

    cfg = load_config(None, [
        f"runs_dir={root / 'runs'}", "experiment=synth", f"data.root={data}",
        f"folds.n_splits={n_splits}", f"seed={seed}", "stack.lightgbm.min_child_samples=5",
        *overrides,
    ])
    folds = make_folds(train, FoldConfig(n_splits=n_splits, seed=seed))
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    folds.to_csv(cfg.run_dir / "folds.csv", index=False)

    for branch, prob, st in (("audio", audio, audio_status), ("visual", visual, visual_status)):
        write_branch(cfg.run_dir / branch, clips, prob, st, folds)
    return cfg, manifest


def write_branch(out: Path, clips: pd.DataFrame, prob: np.ndarray, status: np.ndarray,
                 folds: pd.DataFrame) -> None:
    """A branch folder as contract 3 leaves it: folds.csv, oof.csv, val_pred.csv, test_pred.csv."""
    out.mkdir(parents=True, exist_ok=True)
    df = clips.assign(prob=prob, status=status)
    folds.to_csv(out / "folds.csv", index=False)
    tr = df[df["split"] == "train"].merge(folds[["video_name", "fold"]], on="video_name")
    tr[["video_name", "fold", "target", "prob", "status"]].to_csv(out / "oof.csv", index=False)
    df[df["split"] == "val"][["video_name", "target", "prob", "status"]].to_csv(out / "val_pred.csv", index=False)
    df[df["split"] == "test"][["video_name", "prob", "status"]].to_csv(out / "test_pred.csv", index=False)
    (out / "config.yaml").write_text(f"experiment: synth\nbranch: {out.name}\n")
