"""Stack the branches of a run: `python tools/stack.py --config configs/stack.yaml [key=value ...]`."""

import sys

from mmdf.cli import main

if __name__ == "__main__":
    sys.exit(main(["stack", *sys.argv[1:]]))
