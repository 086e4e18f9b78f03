"""Score new clips with a trained run: `python tools/predict.py --run runs/baseline clips/ --out scores.csv`."""

import sys

from mmdf.cli import main

if __name__ == "__main__":
    sys.exit(main(["predict", *sys.argv[1:]]))
