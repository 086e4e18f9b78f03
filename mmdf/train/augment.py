"""Train-time augmentation per branch, and the test-time views.

Randomness comes from torch's global generator, which the trainer reseeds per
fold and epoch (and DataLoader workers derive their seeds from), so a resumed
run draws the same augmentations as an uninterrupted one.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torchvision.transforms import v2

from mmdf.train.config import AudioAugConfig, AudioTTAConfig, VisualAugConfig, VisualTTAConfig


class SpecAugment:
    """Time shift, time/frequency masking and optional vertical flip of a (C, H, W) mel image.

    H is frequency (row 0 = lowest mel band, as librosa and the cache store it),
    W is time. Masks are filled with the image mean so they carry no signal.
    """

    def __init__(self, cfg: AudioAugConfig):
        self.cfg = cfg

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        _, h, w = x.shape
        if cfg.time_shift > 0:
            limit = int(cfg.time_shift * w)
            if limit:
                x = torch.roll(x, int(torch.randint(-limit, limit + 1, ())), dims=-1)
        fill = x.mean()
        x = x.clone()
        for _ in range(cfg.time_masks):
            x = _mask(x, -1, int(cfg.time_mask_width * w), fill)
        for _ in range(cfg.freq_masks):
            x = _mask(x, -2, int(cfg.freq_mask_width * h), fill)
        if cfg.vflip > 0 and torch.rand(()) < cfg.vflip:
            x = x.flip(-2)
        return x


def _mask(x: torch.Tensor, dim: int, max_width: int, fill: torch.Tensor) -> torch.Tensor:
    if max_width < 1:
        return x
    width = int(torch.randint(0, max_width + 1, ()))
    start = int(torch.randint(0, x.shape[dim] - width + 1, ()))
    x.narrow(dim, start, width).fill_(fill)
    return x


def face_augment(cfg: VisualAugConfig, size: int) -> v2.Compose:
    """Augment a uint8 (3, S, S) face crop and resize it to ``size``; output stays uint8."""
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


class JpegRecompress(torch.nn.Module):
    """Re-encode a uint8 (3, H, W) RGB image as JPEG at a random quality in [lo, hi].

    OpenCV rather than ``v2.JPEG``: torchvision's image codecs are deprecated.
    """

    def __init__(self, lo: int, hi: int):
        super().__init__()
        self.lo, self.hi = lo, hi

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        quality = int(torch.randint(self.lo, self.hi + 1, ()))
        img = np.ascontiguousarray(x.permute(1, 2, 0).numpy()[..., ::-1])  # RGB -> BGR
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
        return torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1)


def audio_tta_views(x: torch.Tensor, cfg: AudioTTAConfig) -> list[torch.Tensor]:
    """The batch (B, C, H, W) plus one circularly time-shifted copy per configured shift."""
    w = x.shape[-1]
    return [x] + [torch.roll(x, int(round(s * w)), dims=-1) for s in cfg.time_shifts]


def visual_tta_views(x: torch.Tensor, cfg: VisualTTAConfig) -> list[torch.Tensor]:
    """The batch (B, 3, S, S), plus its mirror image if enabled."""
    return [x, x.flip(-1)] if cfg.hflip else [x]
