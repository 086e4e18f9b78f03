"""Check and measure mmdf's CUDA paths on one GPU in under 8 minutes; prints a table and writes JSON.

    python tools/bench_gpu.py [--clips ../shared/realdata] [--out runs/bench_gpu/results.json]
    python tools/bench_gpu.py --dry     # every step on the CPU at toy sizes: checks this script, measures nothing

Steps (each ok, failed or skipped; the exit status is 1 when one failed, and it is named):

- mtcnn: ``prepare_clip_faces`` with the MTCNN detector on CUDA against the CPU route, in the
  same run, interleaved, over the 1080p clips (K=16, the full-size settings): frames/s of the
  whole clip and of detection alone, and whether both find the same main face;
- prepare_cuda: ``mmdf prepare`` of a few demo clips with ``prepare.device=cuda`` in worker processes;
- torchrun_train: ``torchrun --standalone --nproc_per_node 1 -m mmdf train audio`` on that cache
  (one process is a world of one: the library starts no process group for it);
- nccl: a one-process torchrun that starts an NCCL process group, wraps the library's model in
  DDP as the trainer does, runs the library's ``train_step`` and an all_reduce;
- train_audio, train_visual: ``bench_train.bench_branch`` (the library's ``train_step``, models
  and datasets) on a synthetic cache at the configs' batch sizes, ``pretrained=false``: train
  step, train end to end and inference samples/s under AMP off, bf16 and fp16, channels_last on
  and off, peak GPU memory; the data loader alone at 8 and 16 workers against the model step.

No step starts after BUDGET_S seconds (it is reported skipped). Without a CUDA device it says so and exits 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUDGET_S = 420  # no step starts after this many seconds, so that the run ends within 8 minutes
# the paths' checks first, the longer measurements after: a spent budget skips figures, not checks
STEPS = ("mtcnn", "prepare_cuda", "torchrun_train", "nccl", "train_audio", "train_visual")
NO_CUDA = "no CUDA device: nothing to check here (run it on a GPU machine; --dry runs its steps on the CPU)"


@dataclasses.dataclass
class Plan:
    """Where and how big: ``dry`` runs every step on ``device='cpu'`` at toy sizes."""

    device: str
    dry: bool
    clips: Path
    work: Path

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")


def sibling(name: str):
    """A script beside this one (benchmarks/ is no package), loaded by path."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- face detection


def step_mtcnn(plan: Plan) -> dict:
    """MTCNN on the device against the CPU, on the same clips and the same decoded frames."""
    import torch

    from mmdf.run_config import load_config
    from mmdf.prepare.faces import FaceDetector, faces_from_frames, prepare_clip_faces
    from mmdf.prepare.media import read_frames

    paths = sorted(p for p in plan.clips.glob("*.mp4") if p.name != "corrupted.mp4")[: 1 if plan.dry else None]
    if not paths:
        return {"status": "skipped", "note": f"no .mp4 clips in {plan.clips}"}
    cfg = dataclasses.replace(load_config(REPO / "configs/data.yaml").prepare.faces, num_frames=4 if plan.dry else 16)
    cpu, gpu = FaceDetector(cfg, "cpu"), FaceDetector(cfg, plan.device)
    decoded = {p: read_frames(p, cfg.num_frames, cfg.skip_nonref) for p in paths}
    routes = {
        "cpu_clip": lambda p: prepare_clip_faces(p, cfg, cpu),
        "gpu_clip": lambda p: prepare_clip_faces(p, cfg, gpu),
        "cpu_detect": lambda p: faces_from_frames(*decoded[p], cpu, cfg),
        "gpu_detect": lambda p: faces_from_frames(*decoded[p], gpu, cfg),
    }
    for route in routes.values():  # warm up (CUDA context, cuDNN)
        route(paths[0])
    s = sibling("bench_prepare").interleaved(routes, paths, 1 if plan.dry else 3).wall  # cuda: wall clock
    k = cfg.num_frames
    return {
        "status": "ok", "clips": [p.name for p in paths], "k": k, "cpu_threads": torch.get_num_threads(),
        **{f"{name}_frames_per_s": k / sec for name, sec in s.items()},
        "clip_speedup": s["cpu_clip"] / s["gpu_clip"], "detect_speedup": s["cpu_detect"] / s["gpu_detect"],
        **same_main_face(paths, decoded, cpu, gpu, cfg),
    }


def same_main_face(paths, decoded, cpu, gpu, cfg) -> dict:
    """Whether the device finds the CPU's main face: frames found by both, and their box IoU."""
    import numpy as np

    from mmdf.prepare.faces import box_iou, faces_from_frames

    ious, found = [], {"cpu": 0, "gpu": 0}
    for p in paths:
        a, b = faces_from_frames(*decoded[p], cpu, cfg), faces_from_frames(*decoded[p], gpu, cfg)
        found["cpu"] += a.frames_with_face
        found["gpu"] += b.frames_with_face
        by_index = dict(zip(b.frame_indices.tolist(), b.boxes))
        ious += [float(box_iou(box, by_index[i][None])[0]) for i, box in zip(a.frame_indices.tolist(), a.boxes)
                 if i in by_index]
    return {"frames_with_face_cpu": found["cpu"], "frames_with_face_gpu": found["gpu"],
            "same_main_face_share": float(np.mean([x > 0.5 for x in ious])) if ious else float("nan"),
            "main_face_iou_mean": float(np.mean(ious)) if ious else float("nan")}


# --------------------------------------------------------------------------- training


def step_train(plan: Plan, name: str) -> dict:
    """bench_train.bench_branch at the config's batch size: channels_last on/off at 8 workers, then 16 workers."""
    import torch

    from mmdf.run_config import load_config
    from mmdf.train.branches import get_branch

    bench_train, branch = sibling("bench_train"), get_branch(name)
    steps = 2 if plan.dry else 20
    rows = []
    for channels_last, workers in ((True, 8), (False, 8), (True, 16)):
        overrides = [f"train.{name}.model.pretrained=false", f"train.device={'cuda' if plan.cuda else 'cpu'}",
                     f"train.channels_last={str(channels_last).lower()}", f"train.num_workers={workers}"]
        overrides += ["train.batch_size=2", "train.num_workers=2"] if plan.dry else []
        cfg = load_config(REPO / "configs" / f"{name}.yaml", overrides)
        per_clip = getattr(branch.section(cfg.train), "train_frames", None) or 1  # items a clip gives per epoch
        clips = -(-cfg.train.batch_size * (steps + 2) // per_clip)
        found = bench_train.bench_branch(cfg, branch, steps=steps, synthetic=clips)
        rows += [{**r, "channels_last": channels_last} for r in found]
        if plan.cuda:
            torch.cuda.empty_cache()
    return {"status": "ok", "rows": rows, "loader_vs_step": loader_vs_step(rows)}


def loader_vs_step(rows: list[dict]) -> list[dict]:
    """Per worker count: the loader alone against the fastest train step (loader/step > 1: not the bottleneck)."""
    out = []
    for workers in sorted({r["num_workers"] for r in rows}):
        mine = [r for r in rows if r["num_workers"] == workers]
        loader = max(r["samples_per_s"] for r in mine if r["what"] == "loader")
        step = max(r["samples_per_s"] for r in mine if r["what"] == "train_step")
        out.append({"num_workers": workers, "loader_samples_per_s": loader, "train_step_samples_per_s": step,
                    "loader_over_step": loader / step})
    return out


# --------------------------------------------------------------------------- the pipeline on the device


def _run(args: list[str], timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    """A command from the repository root; raises with the tail of its output when it fails."""
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:6])} ... exited {done.returncode}:\n{(done.stdout + done.stderr)[-2500:]}")
    return done


def _demo_overrides(plan: Plan) -> list[str]:
    return [f"data.root={plan.work / 'demo'}", f"data.cache_dir={plan.work / 'cache'}",
            f"runs_dir={plan.work / 'runs'}", "experiment=bench_gpu"]


def step_prepare(plan: Plan) -> dict:
    """`mmdf prepare` of a few demo clips, MTCNN on the device in two worker processes."""
    # a fresh process: forking render workers from this one, which holds torch's threads, can hang
    _run([sys.executable, "-m", "mmdf", "demo-data", str(plan.work / "demo"), "--n-train", "12" if plan.dry else "24",
          "--n-val", "2", "--n-test", "2"], timeout=180)
    t0 = time.perf_counter()
    _run([sys.executable, "-m", "mmdf", "prepare", "--config", "configs/demo/data.yaml", *_demo_overrides(plan),
          f"prepare.device={plan.device}", "prepare.workers=2", "prepare.progress=false"], timeout=180)
    import pandas as pd

    from mmdf.run_config import load_config
    from mmdf.prepare.manifest import load_manifest

    manifest = load_manifest(load_config(REPO / "configs/demo/data.yaml", _demo_overrides(plan)))
    statuses = pd.Series(manifest["visual_status"]).value_counts().to_dict()
    if not statuses.get("ok"):
        raise RuntimeError(f"no clip got face crops with prepare.device={plan.device}: {statuses}")
    return {"status": "ok", "seconds": time.perf_counter() - t0, "clips": len(manifest), "visual_status": statuses}


def step_torchrun_train(plan: Plan) -> dict:
    """`torchrun --nproc_per_node 1 -m mmdf train audio` for one epoch on the prepared demo cache."""
    if not (plan.work / "cache").is_dir():
        return {"status": "skipped", "note": "needs the cache of the prepare_cuda step"}
    t0 = time.perf_counter()
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
          "-m", "mmdf", "train", "audio", "--config", "configs/demo/audio.yaml", *_demo_overrides(plan),
          f"train.device={'cuda' if plan.cuda else 'cpu'}", "train.epochs=1", "folds.n_splits=2",
          "train.num_workers=2", "train.progress=false"], timeout=240)
    oof = plan.work / "runs" / "bench_gpu" / "audio" / "oof.csv"
    if not oof.is_file():
        raise RuntimeError(f"the run wrote no {oof}")
    return {"status": "ok", "seconds": time.perf_counter() - t0, "oof_rows": sum(1 for _ in oof.open()) - 1}


def step_nccl(plan: Plan) -> dict:
    """A one-process torchrun of :func:`nccl_worker` (NCCL on CUDA, gloo in --dry)."""
    t0 = time.perf_counter()
    done = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
                 str(Path(__file__).resolve()), "--nccl-worker", "--device", plan.device], timeout=180)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return {"status": "ok", "seconds": time.perf_counter() - t0, **report}


def nccl_worker(device: str) -> None:
    """In torchrun: a process group, the library's model wrapped in DDP as the trainer does, train_step, all_reduce."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from mmdf.train import distributed
    from mmdf.train.config import ModelConfig
    from mmdf.train.loop import train_step
    from mmdf.train.models import create_model
    from mmdf.train.runtime import Runtime

    cuda = device.startswith("cuda")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if cuda else "gloo")
    rt = Runtime(torch.device(f"cuda:{local}" if cuda else "cpu"), torch.bfloat16 if cuda else None, cuda,
                 distributed.Dist(dist.get_rank(), dist.get_world_size(), local))
    model = create_model(ModelConfig(name="test_efficientnet", pretrained=False, in_chans=1)).to(rt.device)
    if rt.channels_last:
        model.to(memory_format=torch.channels_last)
    net = DistributedDataParallel(model, device_ids=[rt.device.index] if cuda else None)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(rt.device.type, enabled=False)
    x, y = rt.to_device(torch.randn(8, 1, 64, 64)), torch.tensor([0.0, 1.0] * 4, device=rt.device)
    losses = [float(train_step(net, x, y, torch.nn.BCEWithLogitsLoss(), opt, scaler, rt)) for _ in range(5)]
    total = torch.full((1,), float(dist.get_rank() + 1), device=rt.device)
    dist.all_reduce(total)
    backend, world = dist.get_backend(), dist.get_world_size()
    dist.destroy_process_group()
    if total.item() != world * (world + 1) / 2 or not all(map(lambda v: v == v, losses)):
        raise SystemExit(f"nccl worker: all_reduce gave {total.item()}, losses {losses}")
    print(json.dumps({"backend": backend, "world_size": world, "losses": losses}))


# --------------------------------------------------------------------------- the run


def run_steps(plan: Plan, names: list[str]) -> dict:
    """Every step in turn, each failure caught and recorded; none starts once BUDGET_S has passed."""
    makers = {"mtcnn": step_mtcnn, "train_audio": lambda p: step_train(p, "audio"),
              "train_visual": lambda p: step_train(p, "visual"), "prepare_cuda": step_prepare,
              "torchrun_train": step_torchrun_train, "nccl": step_nccl}
    start, results = time.perf_counter(), {}
    for name in names:
        if time.perf_counter() - start > BUDGET_S:
            results[name] = {"status": "skipped", "note": f"time budget ({BUDGET_S} s) spent"}
            continue
        t0 = time.perf_counter()
        try:
            results[name] = makers[name](plan)
        except Exception as exc:  # noqa: BLE001 - a failing path is a result: report it, go on
            results[name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[-3000:],
                             "traceback": traceback.format_exc()[-3000:]}
        results[name]["step_seconds"] = time.perf_counter() - t0
        print(f"[bench_gpu] {name}: {results[name]['status']} ({results[name]['step_seconds']:.0f} s)", flush=True)
    return results


def format_table(results: dict) -> str:
    """Step statuses, then the measurements of the steps that ran."""
    lines = [f"{name:<16} {r['status']:<8} {r.get('step_seconds', 0):>5.0f} s  "
             f"{r.get('error', r.get('note', ''))[:150]}"
             for name, r in results.items()]
    m = results.get("mtcnn", {})
    if m.get("status") == "ok":
        lines.append(f"\nMTCNN K={m['k']} over {len(m['clips'])} clips, frames/s: whole clip cpu "
                     f"{m['cpu_clip_frames_per_s']:.1f} / device {m['gpu_clip_frames_per_s']:.1f} "
                     f"({m['clip_speedup']:.1f}x); detection alone cpu {m['cpu_detect_frames_per_s']:.1f} / device "
                     f"{m['gpu_detect_frames_per_s']:.1f} ({m['detect_speedup']:.1f}x); same main face "
                     f"{m['same_main_face_share']:.0%} (IoU {m['main_face_iou_mean']:.3f}; "
                     f"cpu {m['cpu_threads']} threads)")
    for name in ("train_audio", "train_visual"):
        if results.get(name, {}).get("status") != "ok":
            continue
        import pandas as pd

        frame = pd.DataFrame(results[name]["rows"])
        cols = ["model", "batch_size", "num_workers", "channels_last", "what", "amp", "samples_per_s", "peak_gpu_mib"]
        lines += [f"\n{name}:", frame[cols].to_string(index=False, float_format="%.1f"),
                  pd.DataFrame(results[name]["loader_vs_step"]).to_string(index=False, float_format="%.1f")]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry", action="store_true", help="run every step on the CPU at toy sizes (no figures)")
    parser.add_argument("--clips", default=str(REPO.parent / "shared" / "realdata"), help="1080p clips for mtcnn")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    parser.add_argument("--out", default=str(REPO / "runs/bench_gpu/results.json"))
    parser.add_argument("--nccl-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.nccl_worker:
        nccl_worker(args.device)
        return 0
    names = [s for s in args.steps.split(",") if s]
    unknown = sorted(set(names) - set(STEPS))
    if unknown:
        parser.error(f"unknown steps {unknown}; choose from {','.join(STEPS)}")
    import torch

    if not args.dry and not torch.cuda.is_available():
        print(NO_CUDA)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as work:
        plan = Plan("cpu" if args.dry else "cuda", args.dry, Path(args.clips), Path(work))
        results = {"device": torch.cuda.get_device_name(0) if plan.cuda else "cpu (--dry)",
                   "torch": torch.__version__, "steps": run_steps(plan, names)}
    print(format_table(results["steps"]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"written: {out}")
    failed = [name for name, r in results["steps"].items() if r["status"] == "failed"]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
