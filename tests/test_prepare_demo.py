"""`mmdf prepare` with the demo config on a tiny demo dataset: every hard case gets its status."""

from __future__ import annotations

import pandas as pd

from mmdf.run_config import load_config
from mmdf.demo.dataset import make_demo_dataset
from mmdf.prepare.runner import prepare_dataset

EXPECTED = {"": "ok", "silent": "ok", "no_audio": "no_audio", "no_face": "no_face", "short": "too_short"}


def test_demo_hard_cases_get_expected_statuses(tmp_path, repo_root):
    root = make_demo_dataset(tmp_path / "demo", n_train=8, n_val=0, n_test=0, workers=1)
    cfg = load_config(repo_root / "configs/demo/data.yaml", [
        f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "data.val_labels=null",
        "data.test_list=null", "prepare.isolate=false", "prepare.progress=false",
    ])
    manifest = prepare_dataset(cfg)
    truth = pd.read_csv(root / "manifest.csv", keep_default_na=False)
    joined = truth.merge(manifest, on=["split", "video_name"], how="outer", validate="1:1")
    assert len(joined) == len(truth) == len(manifest), "every clip accounted for"
    assert set(truth.hard_case) >= {"no_audio", "no_face", "short", "silent"}
    got = dict(zip(joined.video_name, joined.status))
    want = {name: EXPECTED[case] for name, case in zip(joined.video_name, joined.hard_case)}
    assert got == want
