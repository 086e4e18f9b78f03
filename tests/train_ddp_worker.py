"""Entry point for the 2-process DDP test: train a branch on a pickled synthetic manifest.

Run as ``python -m torch.distributed.run --standalone --nproc_per_node 2
tests/train_ddp_worker.py MANIFEST.pkl TMP EXPERIMENT BRANCH [key=value ...]``
(or without torchrun for the single-process reference).
"""

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # a script run by path: find train_factory

from train_factory import tiny_config  # noqa: E402

from mmdf.train.kfold import train_branch  # noqa: E402

if __name__ == "__main__":
    manifest_file, tmp, experiment, branch, *extra = sys.argv[1:]
    cfg = tiny_config(Path(tmp), experiment, extra)
    train_branch(cfg, branch, manifest=pd.read_pickle(manifest_file))
