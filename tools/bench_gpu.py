"""Check and measure mmdf's CUDA paths on one GPU (benchmarks/bench_gpu.py; --help for its steps).

    python tools/bench_gpu.py [--dry] [--out runs/bench_gpu/results.json]
"""

import runpy
from pathlib import Path

if __name__ == "__main__":
    runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu.py"), run_name="__main__")
