"""The parent of `mmdf prepare` holds about the manifest, not a dict per journal row (and per donor row)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

N_CLIPS = 20_000
# Peak memory of `prepare_dataset` over what the process held before, per clip, fixed costs included:
# at 20k clips 197 MiB before the compact journal table (10 KB a clip: the journal read twice as
# dicts, plus the donor's), 73 MiB after (3.8 KB; 1.6-1.8 KB a clip at 60k-320k clips).
MAX_BYTES_PER_CLIP = 6000


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmHWM from /proc")
def test_parent_memory_per_clip_is_small(tmp_path, repo_root):
    spec = importlib.util.spec_from_file_location("bench_prepare_memory",
                                                  repo_root / "benchmarks" / "bench_prepare_memory.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.setup_journal(tmp_path, N_CLIPS)  # a finished cache of N clips and a donor cache beside it
    done = subprocess.run([sys.executable, bench.__file__, "_measure-journal", "--work", str(tmp_path)],
                          cwd=repo_root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["clips"] == N_CLIPS
    per_clip = (figures["peak_rss_mib"] - figures["rss_after_imports_mib"]) * 2**20 / N_CLIPS
    assert per_clip < MAX_BYTES_PER_CLIP, figures
