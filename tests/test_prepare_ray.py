"""The Ray engine (``--engine ray``) on a real two-node cluster on this machine: the same manifest, features
and scores as the local engine, a row for every clip, and nothing lost or redone when a process dies.

One cluster (``ray.cluster_utils.Cluster``, two nodes of one CPU) serves the whole module: Ray takes seconds
to start.
"""

from __future__ import annotations

import filecmp
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

ray = pytest.importorskip("ray", reason="the Ray engine needs the extra: pip install 'mmdf[ray]'")

from media_factory import make_clip, make_labels  # noqa: E402
from mmdf.run_config import load_config  # noqa: E402
from mmdf.prepare.cache import cache_root, read_journal  # noqa: E402
from mmdf.prepare.journal import iter_journal  # noqa: E402
from mmdf.prepare.manifest import COLUMNS  # noqa: E402
from mmdf.prepare.row import FEATURE_FILES  # noqa: E402
from mmdf.prepare.runner import prepare_dataset  # noqa: E402

TESTS = Path(__file__).resolve().parent
TINY = ["data.test_list=null", "prepare.progress=false", "prepare.faces.num_frames=3",
        "prepare.faces.detect_size=128", "prepare.faces.min_face_size=20", "prepare.faces.crop_size=32",
        "prepare.mel.image_size=32"]


@pytest.fixture(scope="module")
def cluster():
    """Two Ray nodes of one CPU each; this process is the driver, its workers get the crash hook."""
    from ray.cluster_utils import Cluster

    made = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    made.add_node(num_cpus=1)
    ray.init(address=made.address, runtime_env={"env_vars": {"PYTHONPATH": str(TESTS)},
                                               "worker_process_setup_hook": "ray_hooks.inject_crashes"})
    yield made
    ray.shutdown()
    made.shutdown()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, realdata):
    """Good clips, one without a face, one without audio, a missing file and a real damaged one."""
    root = tmp_path_factory.mktemp("ray_ds")
    for i in range(3):
        make_clip(root / "trainset" / f"good{i}.mp4", duration=1.5, seed=i, size=128)
    make_clip(root / "trainset" / "no_face.mp4", duration=1.5, face=False, size=128)
    make_clip(root / "valset" / "no_audio.mp4", duration=1.5, audio=None, size=128)
    shutil.copy(realdata / "corrupted.mp4", root / "valset" / "corrupt.mp4")
    make_labels(root / "trainset_label.txt", [("good0.mp4", 0), ("good1.mp4", 1), ("good2.mp4", 0),
                                              ("no_face.mp4", 1), ("gone.mp4", 0)])
    make_labels(root / "valset_label.txt", [("no_audio.mp4", 0), ("corrupt.mp4", 1)])
    return root


def config(root, cache, *extra):
    return load_config(None, [f"data.root={root}", f"data.cache_dir={cache}", *TINY, *extra])


def test_ray_engine_gives_the_local_engines_manifest_and_features(cluster, dataset, tmp_path):
    local = prepare_dataset(config(dataset, tmp_path / "local", "prepare.isolate=false"))
    on_ray = prepare_dataset(config(dataset, tmp_path / "ray", "prepare.engine=ray"))
    statuses = dict(zip(on_ray.video_name, on_ray.status))
    assert statuses == {"good0.mp4": "ok", "good1.mp4": "ok", "good2.mp4": "ok", "no_face.mp4": "no_face",
                        "gone.mp4": "missing", "no_audio.mp4": "no_audio", "corrupt.mp4": statuses["corrupt.mp4"]}
    assert statuses["corrupt.mp4"] in ("corrupt", "truncated")
    same = [c for c in COLUMNS if c not in (*FEATURE_FILES.values(), "path")]
    pd.testing.assert_frame_equal(on_ray[same], local[same])
    for column in FEATURE_FILES.values():
        for a, b in zip(on_ray[column], local[column]):
            assert bool(a) == bool(b) and (not a or filecmp.cmp(a, b, shallow=False)), (column, a)


def test_a_clip_that_kills_its_worker_is_corrupt_and_a_killed_worker_loses_no_clip(cluster, tmp_path):
    root = tmp_path / "ds"
    names = ["a.mp4", "crash.mp4", "killed_once.mp4", "b.mp4"]
    for i, name in enumerate(names):
        make_clip(root / "trainset" / name, duration=1.2, seed=i, size=96)
    make_labels(root / "trainset_label.txt", [(n, i % 2) for i, n in enumerate(names)])
    manifest = prepare_dataset(config(root, tmp_path / "cache", "data.val_labels=null", "prepare.engine=ray"))
    result = dict(zip(manifest.video_name, zip(manifest.status, manifest.error)))
    assert result["crash.mp4"][0] == "corrupt" and "died on this clip 3 times" in result["crash.mp4"][1]
    assert (root / "trainset" / "killed_once.mp4.killed").exists()  # its worker did die once
    assert {n: result[n][0] for n in ("a.mp4", "killed_once.mp4", "b.mp4")} == dict.fromkeys(
        ("a.mp4", "killed_once.mp4", "b.mp4"), "ok")


DRIVER = textwrap.dedent(
    """
    import sys
    from mmdf.run_config import load_config
    from mmdf.prepare.runner import prepare_dataset
    prepare_dataset(load_config(None, sys.argv[1:]))
    """
)


def test_a_killed_driver_resumes_without_redoing_finished_clips(cluster, tmp_path, repo_root):
    root = tmp_path / "ds"
    names = [f"c{i}.mp4" for i in range(8)]
    for i, name in enumerate(names):
        make_clip(root / "trainset" / name, duration=1.5, seed=i, size=128)
    make_labels(root / "trainset_label.txt", [(n, i % 2) for i, n in enumerate(names)])
    args = [f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "data.val_labels=null", *TINY,
            "prepare.engine=ray", f"prepare.address={cluster.address}"]
    cfg = load_config(None, args)
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, *args], cwd=repo_root,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and not read_journal(cache_root(cfg)) and driver.poll() is None:
        time.sleep(0.2)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=60)
    before = read_journal(cache_root(cfg))
    assert before, "the driver finished no clip before it was killed"
    manifest = prepare_dataset(cfg)
    assert (manifest.status == "ok").all() and len(manifest) == len(names)
    lines = [(r["video_name"], r["prepared_at"]) for r in iter_journal(cache_root(cfg))]
    assert len(lines) == len({n for n, _ in lines}) == len(names)  # no clip prepared twice
    assert all(read_journal(cache_root(cfg))[key]["prepared_at"] == row["prepared_at"] for key, row in before.items())


def test_predict_on_ray_scores_as_the_local_engine(cluster, tmp_path_factory):
    """`mmdf predict --engine ray` (predict_clips' engine): the same rows and scores as the local engine."""
    from test_predict_run import make_tiny_run

    from mmdf.predict.predict import predict_clips

    run_dir, folder = make_tiny_run(tmp_path_factory.mktemp("predict_run"))
    local = predict_clips(run_dir, [folder], cache_dir=tmp_path_factory.mktemp("p_local"), progress=False)
    on_ray = predict_clips(run_dir, [folder], cache_dir=tmp_path_factory.mktemp("p_ray"), progress=False,
                           engine=("ray", None))
    pd.testing.assert_frame_equal(on_ray.drop(columns=["path"]), local.drop(columns=["path"]))
    assert on_ray["prob"].notna().sum() >= 5
