"""tools/bench_gpu.py: a clear message and exit 0 without CUDA; failing steps named with exit 1; --dry steps run."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def bench(repo_root):
    spec = importlib.util.spec_from_file_location("bench_gpu", repo_root / "benchmarks" / "bench_gpu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_without_cuda_it_says_so_and_exits_0(repo_root, tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no device even on a GPU machine
    out = subprocess.run([sys.executable, str(repo_root / "tools" / "bench_gpu.py"), "--out", str(tmp_path / "r.json")],
                         cwd=repo_root, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "no CUDA device" in out.stdout
    assert not (tmp_path / "r.json").exists()


def test_a_failing_step_is_named_and_exits_1(bench, tmp_path, monkeypatch, capsys):
    def broken(plan):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(bench, "step_mtcnn", broken)
    monkeypatch.setattr(sys, "argv", ["bench_gpu.py", "--dry", "--steps", "mtcnn", "--out", str(tmp_path / "r.json")])
    assert bench.main() == 1
    captured = capsys.readouterr()
    assert "FAILED: mtcnn" in captured.err and "kernel exploded" in captured.out
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["steps"]["mtcnn"]["status"] == "failed"


def test_steps_past_the_budget_are_skipped_not_failed(bench, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "BUDGET_S", -1)
    plan = bench.Plan("cpu", True, tmp_path, tmp_path)
    assert bench.run_steps(plan, ["nccl"])["nccl"]["status"] == "skipped"


def test_dry_nccl_step_runs_the_library_step_under_torchrun(repo_root, tmp_path):
    """The one-process torchrun worker (gloo in --dry): process group, DDP-wrapped model, train_step, all_reduce."""
    out = subprocess.run([sys.executable, str(repo_root / "tools" / "bench_gpu.py"), "--dry", "--steps", "nccl",
                          "--out", str(tmp_path / "r.json")], cwd=repo_root, capture_output=True, text=True,
                         timeout=240)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    nccl = json.loads((tmp_path / "r.json").read_text())["steps"]["nccl"]
    assert nccl["status"] == "ok" and nccl["backend"] == "gloo" and nccl["world_size"] == 1


def test_loader_against_step(bench):
    rows = [{"num_workers": w, "what": what, "samples_per_s": rate}
            for w, what, rate in ((8, "loader", 800.0), (8, "train_step", 200.0), (8, "train_step", 400.0),
                                  (16, "loader", 1600.0), (16, "train_step", 400.0))]
    assert [r["loader_over_step"] for r in bench.loader_vs_step(rows)] == [2.0, 4.0]
