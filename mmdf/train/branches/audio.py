"""The audio branch: the clip's mel-spectrogram image -> a timm CNN, one item per clip.

Its config section is ``train.audio`` (:class:`AudioBranchConfig`); its
feature is the cached mel image (``mel_file``, made by ``prepare.mel``).
torch and OpenCV are imported where they are used: loading a config (every
command does) reads this module, and must not cost the seconds and the
hundreds of MiB that importing torch does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from mmdf.errors import MmdfError
from mmdf.train.aggregate import sigmoid
from mmdf.train.branches.base import Segments, channel_column, targets_of, to_float
from mmdf.train.branches.torch_branch import TorchBranch
from mmdf.train.config import ModelConfig


@dataclass
class AudioModelConfig(ModelConfig):
    """The audio defaults (a class, not a default_factory, so they hold when a YAML sets one key)."""

    name: str = "efficientnet_b1"
    in_chans: int = 1  # the mel image is grey; timm adapts pretrained RGB stems


@dataclass
class AudioAugConfig:
    """Spectrogram augmentation (SpecAugment-style); no vertical flip unless asked."""

    time_shift: float = 0.2  # circular shift along time by up to this fraction of the width
    time_masks: int = 2
    time_mask_width: float = 0.1  # each mask up to this fraction of the width
    freq_masks: int = 2
    freq_mask_width: float = 0.1  # each mask up to this fraction of the height
    vflip: float = 0.0  # probability; flips frequencies upside down (ablation only)


@dataclass
class AudioTTAConfig:
    time_shifts: list[float] = field(default_factory=list)  # extra views, fractions of the width


@dataclass
class AudioBranchConfig:
    model: AudioModelConfig = field(default_factory=AudioModelConfig)
    # what the network sees of the cached mel image: "mel" the image itself; "dfreq" its change from
    # each mel band to the next (|row i+1 - row i|), the spectrum's fine structure without its envelope
    view: Literal["mel", "dfreq"] = "mel"
    input_size: list[int] = field(default_factory=lambda: [256, 256])  # (H, W) fed to the model
    # "backbone": standardise as the backbone's pretraining did (ImageNet statistics); "data": by the
    # mean and std of the fold's own training images (better for a model trained from scratch)
    normalize: Literal["backbone", "data"] = "backbone"
    augment: AudioAugConfig = field(default_factory=AudioAugConfig)
    tta: AudioTTAConfig = field(default_factory=AudioTTAConfig)

    def __post_init__(self) -> None:
        if len(self.input_size) != 2:
            raise ValueError(f"train.audio.input_size must be [H, W], got {self.input_size}")


class SpecAugment:
    """Time shift, time/frequency masking and optional vertical flip of a (C, H, W) mel image.

    H is frequency (row 0 = lowest mel band, as librosa and the cache store it),
    W is time. Masks are filled with the image mean so they carry no signal.
    Randomness comes from torch's global generator, which the trainer reseeds
    per fold and epoch, so a resumed run draws the same augmentations.
    """

    def __init__(self, cfg: AudioAugConfig):
        self.cfg = cfg

    def __call__(self, x):
        import torch  # deferred: this module loads with every config, torch only to make items

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


def _mask(x, dim: int, max_width: int, fill):
    import torch  # deferred: this module loads with every config, torch only to make items

    if max_width < 1:
        return x
    width = int(torch.randint(0, max_width + 1, ()))
    start = int(torch.randint(0, x.shape[dim] - width + 1, ()))
    x.narrow(dim, start, width).fill_(fill)
    return x


def mel_view(mel: np.ndarray, view: str) -> np.ndarray:
    """The (H, W) uint8 image the network sees of a cached mel image (see ``AudioBranchConfig.view``).

    ``dfreq`` keeps how the level steps from one band to the next and drops
    the long-term spectrum (the speaker's timbre, the channel): the step sizes
    are what a vocoder smooths or sharpens. Its (H - 1) rows are scaled x4
    (steps beyond 63 grey levels are clipped) so that they use the uint8 range.
    """
    if view == "mel":
        return mel
    if view == "dfreq":
        step = np.abs(np.diff(mel.astype(np.int16), axis=0))
        return np.minimum(step * 4, 255).astype(np.uint8)
    raise MmdfError(f"train.audio.view must be mel or dfreq, got {view!r}")


class MelDataset:
    """Mel images (uint8 (H, W) .npy) resized to ``input_size`` and repeated to ``in_chans``."""

    def __init__(self, files: list[str], targets: np.ndarray, cfg: AudioBranchConfig,
                 mean: list[float], std: list[float], train: bool):
        self.files = list(files)
        self.targets = np.asarray(targets, dtype=np.float32)
        self.size = tuple(cfg.input_size)
        self.in_chans = cfg.model.in_chans
        self.view = cfg.view
        self.mean = channel_column(mean)
        self.std = channel_column(std)
        self.augment = SpecAugment(cfg.augment) if train else None
        self.item_clip = np.arange(len(self.files))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        import cv2
        import torch  # deferred: this module loads with every config, torch only to make items

        mel = np.load(self.files[i])
        if mel.ndim != 2:
            raise MmdfError(f"{self.files[i]}: expected a (H, W) mel image, got shape {mel.shape}")
        mel = mel_view(mel, self.view)
        h, w = self.size
        if mel.shape != (h, w):
            mel = cv2.resize(mel, (w, h), interpolation=cv2.INTER_LINEAR)
        x = torch.from_numpy(np.ascontiguousarray(mel))[None].expand(self.in_chans, h, w)
        x = to_float(x, self.mean, self.std)
        if self.augment is not None:
            x = self.augment(x)
        return x, torch.tensor(self.targets[i]), i


class AudioBranch(TorchBranch):
    name = "audio"
    describe = "mel-spectrogram images"
    status_col = "audio_status"
    file_col = "mel_file"
    prepare_keys = ("mel",)
    config_cls = AudioBranchConfig
    modality = "audio"

    def normalization(self, model, section: AudioBranchConfig, fit_rows: pd.DataFrame):
        """The backbone's statistics, or (``normalize: data``) those of up to 512 of the fold's training images."""
        if section.normalize == "backbone":
            return super().normalization(model, section, fit_rows)
        files = fit_rows[self.file_col].astype(str).to_numpy()
        picks = files[np.unique(np.linspace(0, len(files) - 1, min(len(files), 512)).round().astype(int))]
        pixels = np.concatenate([mel_view(np.load(f), section.view).ravel() for f in picks]).astype(np.float64) / 255.0
        c = section.model.in_chans
        return [float(pixels.mean())] * c, [float(max(pixels.std(), 1e-3))] * c

    def segments(self, trained, row: pd.Series) -> Segments | None:
        """A class-activation map along time: the network's logit at each time column of its last feature
        map (their mean is the clip's logit), as a probability, mean of the fold models; the mel image
        spans the clip's used span. None for a network whose head is not a linear map of a mean."""
        from mmdf.train.models import time_logits  # deferred: torch and timm, not for loading a config

        section = self.section(trained.cfg.train)
        rows = pd.DataFrame([row])
        maps = []
        for model, ckpt in trained.models:
            x = self.dataset(rows, section, ckpt["mean"], ckpt["std"], train=False)[0][0][None]
            cam = time_logits(model, x.to(trained.rt.device))
            if cam is None:
                return None
            maps.append(sigmoid(cam))
        score = np.mean(maps, axis=0)
        start = float(row.get("span_start", 0.0)) if pd.notna(row.get("span_start")) else 0.0
        end = float(row["span_end"]) if pd.notna(row.get("span_end")) else float(row["duration"])
        edges = np.linspace(start, end, len(score) + 1)
        return Segments(edges[:-1], edges[1:], score,
                        how=f"class-activation map along time of the audio CNN ({len(score)} column(s) of its last "
                            "feature map over the mel image; their mean logit is the clip's)")

    def dataset(self, rows: pd.DataFrame, section: AudioBranchConfig, mean, std, train: bool) -> MelDataset:
        return MelDataset(rows[self.file_col].astype(str).tolist(), targets_of(rows), section, mean, std, train)

    def tta_views(self, x, section: AudioBranchConfig) -> list:
        """The batch (B, C, H, W) plus one circularly time-shifted copy per configured shift."""
        import torch  # deferred: this module loads with every config, torch only to make items

        w = x.shape[-1]
        return [x] + [torch.roll(x, int(round(s * w)), dims=-1) for s in section.tta.time_shifts]


BRANCH = AudioBranch()
