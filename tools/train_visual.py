"""Train the visual branch k-fold: `python tools/train_visual.py --config configs/visual.yaml [key=value ...]`.

Multi-GPU: `torchrun --nproc_per_node N tools/train_visual.py --config ...`.
"""

import sys

from mmdf.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "visual", *sys.argv[1:]]))
