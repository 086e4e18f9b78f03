"""Datasets over the prepare cache, and what each branch reads from the manifest.

Items are ``(image float32 (C, H, W), target float32, clip index)``; the clip
index maps an item back to its manifest row, so predictions can be gathered
across processes and aggregated per clip. The audio branch has one item per
clip (its mel image); the visual branch one per cached face crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from mmdf.errors import MmdfError, list_offenders
from mmdf.train.augment import SpecAugment, face_augment
from mmdf.train.config import AudioBranchConfig, VisualBranchConfig
from torchvision.transforms import v2


@dataclass(frozen=True)
class BranchSpec:
    """Which manifest columns a branch reads."""

    name: str
    status_col: str  # 'ok' where the modality is usable
    file_col: str  # cached .npy feature


BRANCHES = {
    "audio": BranchSpec("audio", "audio_status", "mel_file"),
    "visual": BranchSpec("visual", "visual_status", "faces_file"),
}


def branch_spec(branch: str) -> BranchSpec:
    if branch not in BRANCHES:
        raise MmdfError(f"unknown branch '{branch}'; expected one of {', '.join(BRANCHES)}")
    return BRANCHES[branch]


def usable_mask(rows: pd.DataFrame, spec: BranchSpec) -> np.ndarray:
    """Rows whose modality is usable; a usable row whose cached file is gone is an error."""
    missing_cols = [c for c in ("video_name", spec.status_col, spec.file_col) if c not in rows]
    if missing_cols:
        raise MmdfError(
            f"the manifest lacks column(s) {', '.join(missing_cols)} needed by the {spec.name} "
            "branch; re-run `mmdf prepare --config ...`"
        )
    ok = (rows[spec.status_col].astype(str) == "ok").to_numpy()
    files = rows[spec.file_col].fillna("").astype(str)
    absent = ok & ~files.map(lambda f: bool(f) and Path(f).is_file()).to_numpy()
    if absent.any():
        raise MmdfError(
            f"{int(absent.sum())} clip(s) have {spec.status_col}=ok but no cached file in "
            f"'{spec.file_col}': {list_offenders(rows.loc[absent, 'video_name'].tolist())}; "
            "the cache is incomplete: re-run `mmdf prepare --config ...`"
        )
    return ok


def _to_float(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (x.float() / 255.0 - mean) / std


class MelDataset(Dataset):
    """Mel images (uint8 (H, W) .npy) resized to ``input_size`` and repeated to ``in_chans``."""

    def __init__(self, files: list[str], targets: np.ndarray, cfg: AudioBranchConfig,
                 mean: list[float], std: list[float], train: bool):
        self.files = list(files)
        self.targets = np.asarray(targets, dtype=np.float32)
        self.size = tuple(cfg.input_size)
        self.in_chans = cfg.model.in_chans
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)
        self.augment = SpecAugment(cfg.augment) if train else None
        self.item_clip = np.arange(len(self.files))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        mel = np.load(self.files[i])
        if mel.ndim != 2:
            raise MmdfError(f"{self.files[i]}: expected a (H, W) mel image, got shape {mel.shape}")
        h, w = self.size
        if mel.shape != (h, w):
            mel = cv2.resize(mel, (w, h), interpolation=cv2.INTER_LINEAR)
        x = torch.from_numpy(np.ascontiguousarray(mel))[None].expand(self.in_chans, h, w)
        x = _to_float(x, self.mean, self.std)
        if self.augment is not None:
            x = self.augment(x)
        return x, torch.tensor(self.targets[i]), i


class FaceDataset(Dataset):
    """Face crops (uint8 (N, S, S, 3) .npy per clip), one item per frame.

    ``frames`` caps the frames used per clip (evenly spaced) - training on
    every crop of a long clip adds little but time.
    """

    def __init__(self, files: list[str], targets: np.ndarray, cfg: VisualBranchConfig,
                 mean: list[float], std: list[float], train: bool, frames: int | None = None,
                 counts: list[int] | None = None):
        self.files = list(files)
        self.targets = np.asarray(targets, dtype=np.float32)
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)
        size = cfg.input_size
        self.center_crop = cfg.center_crop
        self.transform = face_augment(cfg.augment, size) if train else v2.Resize((size, size), antialias=True)
        clip_idx, frame_idx = [], []
        for i, f in enumerate(self.files):
            if counts is not None:  # the manifest's frames_with_face: no need to open every file
                n = int(counts[i])
            else:
                shape = np.load(f, mmap_mode="r").shape
                if len(shape) != 4 or shape[-1] != 3:
                    raise MmdfError(f"{f}: expected (N, S, S, 3) face crops, got shape {shape}")
                n = shape[0]
            if n < 1:
                raise MmdfError(f"{f}: no face crops although visual_status is ok; re-run `mmdf prepare --force`")
            picks = np.arange(n)
            if frames is not None and n > frames:
                picks = np.unique(np.linspace(0, n - 1, frames).round().astype(int))
            clip_idx.extend([i] * len(picks))
            frame_idx.extend(picks.tolist())
        self.item_clip = np.asarray(clip_idx, dtype=np.int64)
        self.item_frame = np.asarray(frame_idx, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.item_clip)

    def __getitem__(self, i: int):
        c = int(self.item_clip[i])
        faces = np.load(self.files[c], mmap_mode="r")
        if self.item_frame[i] >= len(faces):
            raise MmdfError(f"{self.files[c]} holds {len(faces)} face crops, fewer than the manifest's "
                            "frames_with_face; the cache is inconsistent: re-run `mmdf prepare --force`")
        crop = faces[self.item_frame[i]]
        if self.center_crop < 1:
            s = crop.shape[0]
            lo = int(round(s * (1 - self.center_crop) / 2))
            crop = crop[lo:s - lo, lo:s - lo]
        crop = np.array(crop)  # copy out of the memory map (writable, contiguous)
        x = torch.from_numpy(crop).permute(2, 0, 1)
        x = _to_float(self.transform(x), self.mean, self.std)
        return x, torch.tensor(self.targets[c]), c


def build_dataset(branch: str, rows: pd.DataFrame, train_cfg, mean: list[float], std: list[float],
                  train: bool) -> Dataset:
    """The branch's dataset over usable manifest ``rows`` (targets NaN where unknown)."""
    spec = branch_spec(branch)
    files = rows[spec.file_col].astype(str).tolist()
    targets = pd.to_numeric(rows["target"], errors="coerce").astype("float32").to_numpy() \
        if "target" in rows else np.full(len(rows), np.nan, dtype=np.float32)
    if branch == "audio":
        return MelDataset(files, targets, train_cfg.audio, mean, std, train)
    vcfg = train_cfg.visual
    counts = None
    if "frames_with_face" in rows and rows["frames_with_face"].notna().all():
        counts = rows["frames_with_face"].astype(int).tolist()
    return FaceDataset(files, targets, vcfg, mean, std, train, vcfg.train_frames if train else None, counts)
