"""The visual branch: cached face crops -> a timm CNN per face, face scores -> one clip score.

Its config section is ``train.visual`` (:class:`VisualBranchConfig`); its
feature is the cached face crops (``faces_file``, made by ``prepare.faces``).
torch, torchvision and OpenCV are imported where they are used, so that
loading a config (which reads this module) stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from mmdf.errors import MmdfError
from mmdf.prepare.faces import timed_faces
from mmdf.prepare.store import crop_count, load_crops
from mmdf.train.aggregate import aggregate_clips
from mmdf.train.branches.base import Segments, channel_column, clip_span, targets_of, to_float
from mmdf.train.branches.torch_branch import TorchBranch
from mmdf.train.config import ModelConfig


@dataclass
class VisualAugConfig:
    """Face-crop augmentation."""

    hflip: float = 0.5  # probability
    color_jitter: float = 0.2  # brightness/contrast/saturation strength; 0 = off
    hue: float = 0.0  # hue jitter (<= 0.5); costs ~4x the rest of the jitter on CPU
    blur: float = 0.1  # probability of a Gaussian blur
    jpeg: float = 0.2  # probability of JPEG re-compression
    jpeg_quality: list[int] = field(default_factory=lambda: [40, 95])
    crop_scale: float = 0.8  # random resized crop keeps at least this fraction of the area; 1 = off


@dataclass
class VisualTTAConfig:
    hflip: bool = False  # add the mirrored face as a second view


@dataclass
class VisualBranchConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    input_size: int = 224
    # Keep only this central fraction of each cached crop (which carries prepare.faces.margin
    # of context): swap artefacts live inside the face. 1 = the whole crop.
    center_crop: float = 1.0
    augment: VisualAugConfig = field(default_factory=VisualAugConfig)
    tta: VisualTTAConfig = field(default_factory=VisualTTAConfig)
    # Frames per clip used for training (evenly spaced); null = all cached frames.
    train_frames: int | None = None
    # How face scores become a clip score.
    aggregate: Literal["mean_logit", "mean", "median", "topk", "confident"] = "mean_logit"
    topk: int = 3
    confident_threshold: float = 0.8


def face_augment(cfg: VisualAugConfig, size: int):
    """Augment a uint8 (3, S, S) face crop and resize it to ``size`` (a torchvision v2 Compose; stays uint8)."""
    from torchvision.transforms import v2  # deferred: this module loads with every config, torch only to make items

    ops: list = []
    if cfg.crop_scale < 1:
        ops.append(v2.RandomResizedCrop(size, scale=(cfg.crop_scale, 1.0), ratio=(0.9, 1.1), antialias=True))
    else:
        ops.append(v2.Resize((size, size), antialias=True))
    if cfg.hflip > 0:
        ops.append(v2.RandomHorizontalFlip(cfg.hflip))
    if cfg.color_jitter > 0:
        j = cfg.color_jitter
        ops.append(v2.ColorJitter(brightness=j, contrast=j, saturation=j, hue=cfg.hue))
    if cfg.blur > 0:
        ops.append(v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 2.0))], p=cfg.blur))
    if cfg.jpeg > 0:
        lo, hi = cfg.jpeg_quality
        ops.append(v2.RandomApply([JpegRecompress(int(lo), int(hi))], p=cfg.jpeg))
    return v2.Compose(ops)


class JpegRecompress:
    """Re-encode a uint8 (3, H, W) RGB image as JPEG at a random quality in [lo, hi].

    OpenCV rather than ``v2.JPEG``: torchvision's image codecs are deprecated.
    """

    def __init__(self, lo: int, hi: int):
        self.lo, self.hi = lo, hi

    def __call__(self, x):
        import cv2
        import torch  # deferred: this module loads with every config, torch only to make items

        quality = int(torch.randint(self.lo, self.hi + 1, ()))
        img = np.ascontiguousarray(x.permute(1, 2, 0).numpy()[..., ::-1])  # RGB -> BGR
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
        return torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1)


def face_items(files: list[str], counts: list[int] | None, frames: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(clip index, frame index) of every item: each clip's crops, at most ``frames`` evenly spaced."""
    clip_idx, frame_idx = [], []
    for i, f in enumerate(files):
        if counts is not None:  # the manifest's frames_with_face: no need to open every file
            n = int(counts[i])
        else:
            shape = crop_count(f)
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
    return np.asarray(clip_idx, dtype=np.int64), np.asarray(frame_idx, dtype=np.int64)


class FaceDataset:
    """Face crops (uint8 (N, S, S, 3) per clip, as mmdf.prepare.store keeps them), one item per frame.

    ``frames`` caps the frames used per clip (evenly spaced) - training on
    every crop of a long clip adds little but time.
    """

    def __init__(self, files: list[str], targets: np.ndarray, cfg: VisualBranchConfig,
                 mean: list[float], std: list[float], train: bool, frames: int | None = None,
                 counts: list[int] | None = None):
        self.files = list(files)
        self.targets = np.asarray(targets, dtype=np.float32)
        from torchvision.transforms import v2  # deferred: this module loads with every config, torch only to make items

        self.mean = channel_column(mean)
        self.std = channel_column(std)
        size = cfg.input_size
        self.center_crop = cfg.center_crop
        self.transform = face_augment(cfg.augment, size) if train else v2.Resize((size, size), antialias=True)
        self.item_clip, self.item_frame = face_items(self.files, counts, frames)

    def __len__(self) -> int:
        return len(self.item_clip)

    def __getitem__(self, i: int):
        import torch  # deferred: this module loads with every config, torch only to make items

        c = int(self.item_clip[i])
        try:
            crop = load_crops(self.files[c], [self.item_frame[i]])[0]
        except IndexError as exc:
            raise MmdfError(f"{exc}, fewer than the manifest's frames_with_face; the cache is inconsistent: "
                            "re-run `mmdf prepare --force`") from None
        if self.center_crop < 1:
            s = crop.shape[0]
            lo = int(round(s * (1 - self.center_crop) / 2))
            crop = crop[lo:s - lo, lo:s - lo]
        crop = np.ascontiguousarray(crop)
        x = torch.from_numpy(crop).permute(2, 0, 1)
        x = to_float(self.transform(x), self.mean, self.std)
        return x, torch.tensor(self.targets[c]), c


class VisualBranch(TorchBranch):
    name = "visual"
    describe = "face crops"
    status_col = "visual_status"
    file_col = "faces_file"
    prepare_keys = ("faces",)
    config_cls = VisualBranchConfig
    modality = "visual"

    def dataset(self, rows: pd.DataFrame, section: VisualBranchConfig, mean, std, train: bool) -> FaceDataset:
        counts = None
        if "frames_with_face" in rows and rows["frames_with_face"].notna().all():
            counts = rows["frames_with_face"].astype(int).tolist()
        frames = section.train_frames if train else None
        return FaceDataset(rows[self.file_col].astype(str).tolist(), targets_of(rows), section, mean, std,
                           train, frames, counts)

    def segments(self, trained, row: pd.Series) -> Segments | None:
        """Each face crop's probability at the time of its frame. The cache keeps the crops, not their
        times: the frames are sampled and the face found again as `mmdf prepare` did (the run's own
        settings); the cached crops are scored where as many are found, else the new ones."""
        import tempfile

        faces, times, frame_s = timed_faces(row["path"], trained.cfg.prepare.faces, clip_span(row))
        if not len(times):
            return None
        cached = load_crops(row[self.file_col])
        crops = cached if len(cached) == len(times) else faces.crops
        section = self.section(trained.cfg.train)
        with tempfile.TemporaryDirectory() as tmp:
            file = str(row[self.file_col])
            if crops is not cached:
                file = f"{tmp}/faces.npy"
                np.save(file, crops)
            rows = pd.DataFrame([{**row.to_dict(), self.file_col: file, "frames_with_face": len(crops)}])
            probs = trained.item_probs(lambda ckpt: self.dataset(rows, section, ckpt["mean"], ckpt["std"], False),
                                       tta=True)
        return Segments(times, times + frame_s, probs, images=crops,
                        how="each face crop scored by the visual CNN, the mean of the fold models' probabilities")

    def tta_views(self, x, section: VisualBranchConfig) -> list:
        """The batch (B, 3, S, S), plus its mirror image if enabled."""
        return [x, x.flip(-1)] if section.tta.hflip else [x]

    def aggregate(self, item_logits: np.ndarray, item_clip: np.ndarray, section: VisualBranchConfig) -> pd.Series:
        return aggregate_clips(item_logits, item_clip, section.aggregate, section.topk, section.confident_threshold)


BRANCH = VisualBranch()
