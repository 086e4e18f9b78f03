"""Train the audio branch k-fold: `python tools/train_audio.py --config configs/audio.yaml [key=value ...]`.

Multi-GPU: `torchrun --nproc_per_node N tools/train_audio.py --config ...`.
"""

import sys

from mmdf.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "audio", *sys.argv[1:]]))
