"""Train the sync branch k-fold: `python tools/train_sync.py --config configs/sync.yaml [key=value ...]`.

Multi-GPU: `torchrun --nproc_per_node N tools/train_sync.py --config ...`.
"""

import sys

from mmdf.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "sync", *sys.argv[1:]]))
