"""Run an ablation study: `python tools/run_experiment.py experiments/<name>.yaml [key=value ...]`."""

import sys

from mmdf.cli import main

if __name__ == "__main__":
    sys.exit(main(["experiment", *sys.argv[1:]]))
