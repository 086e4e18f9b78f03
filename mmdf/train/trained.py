"""A finished branch run, loaded once, scoring prepared clips with the mean of its fold models.

``mmdf predict`` and the tests use it; the fold models are loaded when the
object is made, not per call, and only from ``weights_only`` checkpoints.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mmdf.errors import MmdfError
from mmdf.train.aggregate import sigmoid
from mmdf.train.checkpoint import load_checkpoint
from mmdf.train.runtime import resolve_runtime
from mmdf.train.scoring import clip_probs, predict_items


def fold_checkpoints(branch_dir: Path) -> list[Path]:
    return sorted(Path(branch_dir).glob("fold_*/best.pt"), key=lambda p: int(p.parent.name[5:]))


class TrainedBranch:
    """The fold models of ``branch_dir`` (a ``runs/<experiment>/<branch>`` folder) of ``branch``.

    ``cfg``: the run config the branch was trained with (``branch_dir/config.yaml``, loaded by the caller).
    """

    def __init__(self, branch, branch_dir: str | Path, cfg):
        self.dir = Path(branch_dir)
        ckpts = fold_checkpoints(self.dir)
        if not ckpts or not (self.dir / "config.yaml").is_file():
            raise MmdfError(f"no trained branch in {self.dir} (expected config.yaml and fold_*/best.pt); "
                            "run `mmdf train <branch> --config ...` first")
        self.cfg = cfg
        self.rt = resolve_runtime(self.cfg.train)
        self.branch = branch
        self.models = [self._load(p) for p in ckpts]

    def _load(self, path: Path) -> tuple[torch.nn.Module, dict]:
        ckpt = load_checkpoint(path)
        if ckpt["branch"] != self.branch.name:
            raise MmdfError(f"{path} is a checkpoint of the {ckpt['branch']} branch, not of {self.branch.name}; "
                            f"retrain the branch in {self.dir}")
        branch = self.branch
        model_cls = type(branch.section(self.cfg.train).model)
        model_cfg = {**ckpt["model_cfg"], "pretrained": False}
        model_cfg.update({"checkpoint": None} if "checkpoint" in model_cfg else {})
        model = branch.create_model(model_cls(**model_cfg), self.cfg.prepare)
        model.load_state_dict(ckpt["model"])
        model.to(self.rt.device)
        if self.rt.channels_last:
            model.to(memory_format=torch.channels_last)
        return model, ckpt

    def score(self, manifest_rows: pd.DataFrame) -> pd.DataFrame:
        """``video_name, prob, status`` per row: mean fold probability, NaN where the modality is unusable."""
        return self.branch.scored(manifest_rows, self._mean_prob)

    def item_probs(self, make_dataset, tta: bool = False) -> np.ndarray:
        """Each item's probability, the mean over fold models; ``make_dataset(ckpt)`` builds the items with
        that fold model's normalisation (``ckpt['mean']``, ``ckpt['std']``). For a clip's timeline."""
        probs = []
        for model, ckpt in self.models:
            logits = predict_items(model, make_dataset(ckpt), self.branch, self.cfg.train, self.rt, tta=tta,
                                   desc=f"{self.branch.name} parts")
            probs.append(sigmoid(logits))
        return np.mean(probs, axis=0)

    def _mean_prob(self, rows: pd.DataFrame) -> np.ndarray:
        tcfg = self.cfg.train
        section = self.branch.section(tcfg)
        probs = []
        for model, ckpt in self.models:
            ds = self.branch.dataset(rows, section, ckpt["mean"], ckpt["std"], train=False)
            logits = predict_items(model, ds, self.branch, tcfg, self.rt, tta=True,
                                   desc=f"{self.branch.name} fold {ckpt['fold']}")
            probs.append(clip_probs(self.branch, tcfg, ds, logits))
        return np.mean(probs, axis=0)
