"""Preprocess clips into cached features: same as `mmdf prepare`."""

import sys

from mmdf.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", *sys.argv[1:]]))
