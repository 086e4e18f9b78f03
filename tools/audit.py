"""Audit a finished run: `python tools/audit.py --run runs/<experiment> [--split val] [--perturb a,b]`."""

import sys

from mmdf.cli import main

if __name__ == "__main__":
    sys.exit(main(["audit", *sys.argv[1:]]))
