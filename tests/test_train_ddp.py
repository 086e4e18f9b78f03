"""Two CPU processes (torchrun, gloo) train the same fold models as one process.

With a GroupNorm model and augmentation off, DDP's averaged gradients over
two half-batches equal one process's gradient over the full batch (the
trainer hands both the same permutation), so the OOF must agree closely; the
gathered predictions must cover every clip exactly once despite the
DistributedSampler's padding (odd val/test counts force padding).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from train_factory import make_manifest

WORKER = Path(__file__).resolve().parent / "train_ddp_worker.py"
EXACT = [  # no randomness left but the (shared) permutation
    "train.audio.model.name=test_efficientnet_gn", "train.audio.model.drop_rate=0.0",
    "train.audio.augment.time_shift=0", "train.audio.augment.time_masks=0",
    "train.audio.augment.freq_masks=0", "train.optimizer.lr=0.002",
]


def _logit(p):
    p = np.clip(p.to_numpy(dtype=float), 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p))


def test_two_process_ddp_matches_one_process(tmp_path):
    manifest = make_manifest(tmp_path, n_train=24, n_val=7, n_test=5, no_audio=0, no_face=0)
    manifest.to_pickle(tmp_path / "m.pkl")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [str(tmp_path / "m.pkl"), str(tmp_path)]
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(WORKER), *base, "ddp", "audio", *EXACT],
        env=env, capture_output=True, text=True, timeout=240)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = subprocess.run([sys.executable, str(WORKER), *base, "single", "audio", *EXACT],
                            env=env, capture_output=True, text=True, timeout=240)
    assert single.returncode == 0, single.stderr[-3000:]

    for name in ("oof.csv", "val_pred.csv", "test_pred.csv"):
        a = pd.read_csv(tmp_path / "runs" / "ddp" / "audio" / name)
        b = pd.read_csv(tmp_path / "runs" / "single" / "audio" / name)
        assert a["video_name"].equals(b["video_name"]) and not a["video_name"].duplicated().any()
        assert a["prob"].notna().all()
        assert np.allclose(_logit(a["prob"]), _logit(b["prob"]), atol=1e-3), name
    fold_preds = pd.read_csv(tmp_path / "runs" / "ddp" / "audio" / "fold_0" / "predictions.csv")
    assert not fold_preds["video_name"].duplicated().any() and len(fold_preds) == 12 + 7 + 5
