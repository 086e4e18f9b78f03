"""A third branch added from outside the library: one module-level object, no code change.

The toy branch looks at the mel image's band profile (mean over time), a
different view of the cached audio, with a config section of its own
(``train.toy``). It must train k-fold with the shared trainer, be found by
the stacker among the run's branches, be offered by ``mmdf train``, and take
part in experiments as a step.
"""

from __future__ import annotations

import json
from pathlib import Path
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
import torch

from mmdf.stack.run import run_stack
from mmdf.train.branches import all_branches, register_branch, unregister_branch
from mmdf.train.branches.base import targets_of
from mmdf.train.branches.torch_branch import TorchBranch
from mmdf.train.config import ModelConfig
from mmdf.train.kfold import train_branch
from train_factory import make_manifest, tiny_config


@dataclass
class ToyConfig:
    model: ModelConfig = field(default_factory=lambda: ModelConfig(
        name="test_efficientnet", pretrained=False, in_chans=1, drop_rate=0.0))
    height: int = 16  # the band profile, resized to height x height


class BandProfile(torch.utils.data.Dataset):
    """Each clip's mel band means (over time), tiled into a small square image."""

    def __init__(self, files, targets, cfg: ToyConfig):
        self.files, self.targets, self.size = list(files), np.asarray(targets, np.float32), cfg.height
        self.item_clip = np.arange(len(self.files))

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        mel = np.load(self.files[i]).astype(np.float32) / 255.0
        profile = torch.from_numpy(mel.mean(axis=1))[None, None, :, None]  # (1, 1, H, 1)
        x = torch.nn.functional.interpolate(profile, size=(self.size, self.size), mode="bilinear")[0]
        return x, torch.tensor(self.targets[i]), i


class ToyBranch(TorchBranch):
    name = "toy"
    describe = "mel band profiles"
    status_col = "audio_status"
    file_col = "mel_file"
    prepare_keys = ("mel",)
    config_cls = ToyConfig

    def dataset(self, rows, section, mean, std, train):
        return BandProfile(rows[self.file_col].astype(str).tolist(), targets_of(rows), section)


TOY = ToyBranch()


@pytest.fixture
def toy_registered():
    register_branch(TOY)
    yield TOY
    unregister_branch(TOY.name)


def test_toy_branch_trains_and_stacks_beside_the_others(tmp_path, toy_registered):
    assert list(all_branches()) == ["audio", "visual", "sync", "audio_stats", "visual_stats", "sync_stats", "toy"]
    manifest = make_manifest(tmp_path)
    cfg = tiny_config(tmp_path, extra=["train.toy.height=8", "stack.lightgbm.min_child_samples=2"])
    assert cfg.train.section("toy").height == 8
    for name in ("audio", "visual", "toy"):
        train_branch(cfg, name, manifest=manifest)
    oof = pd.read_csv(cfg.run_dir / "toy" / "oof.csv")
    assert oof["prob"].notna().sum() == 22 and oof.loc[oof["status"] == "no_audio", "prob"].isna().all()
    metrics = json.loads((cfg.run_dir / "toy" / "metrics.json").read_text())
    assert metrics["branch"] == "toy" and metrics["oof"]["n"] == 22

    stack_dir = run_stack(cfg, manifest=manifest)
    stacked = json.loads((stack_dir / "metrics.json").read_text())
    assert set(stacked["branches"]) == {"audio", "visual", "toy"}
    assert {"toy_prob", "toy_missing"} <= set(stacked["features"])
    assert "toy_only" in {m["method"] for m in stacked["methods"]}


def test_toy_branch_is_a_train_subcommand_and_an_experiment_step(toy_registered):
    from mmdf.cli import build_parser
    from mmdf.experiment.steps import fingerprint, step_names

    args = build_parser().parse_args(["train", "toy", "--config", "x.yaml"])
    assert args.branch == "toy"
    assert step_names() == ("prepare", "audio", "visual", "sync", "audio_stats", "visual_stats", "sync_stats", "toy",
                            "stack")
    cfg = tiny_config(Path("/tmp"))
    other = tiny_config(Path("/tmp"), extra=["train.toy.height=4"])
    assert fingerprint("toy", cfg) != fingerprint("toy", other)  # it reads its own section
    assert fingerprint("audio", cfg) == fingerprint("audio", other)  # no other branch does


def test_unknown_branch_section_is_refused():
    with pytest.raises(Exception, match="unknown config key 'train.toy'"):
        tiny_config(Path("/tmp"), extra=["train.toy.height=8"])
