"""Parameters of branch training.

The loop settings (epochs, optimiser, schedule, precision) are shared; what
differs between the audio and the visual branch (backbone, input size,
augmentation, test-time augmentation, frame aggregation) lives in
``train.audio`` and ``train.visual``. One config file usually trains one
branch (``configs/audio.yaml``, ``configs/visual.yaml``); the branch itself is
chosen on the command line (``mmdf train audio|visual``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class ModelConfig:
    """A timm backbone with one output logit (fake)."""

    name: str = "efficientnet_b0"  # any timm.create_model name
    pretrained: bool = True  # ImageNet weights; needs internet (or the HF cache) once
    checkpoint: str | None = None  # local weights to start from (ours or a timm/torch state dict)
    in_chans: int = 3
    drop_rate: float = 0.2


@dataclass
class AudioModelConfig(ModelConfig):
    """The audio defaults (a class, not a default_factory, so they hold when a YAML sets one key)."""

    name: str = "efficientnet_b1"
    in_chans: int = 1  # the mel image is grey; timm adapts pretrained RGB stems


@dataclass
class OptimizerConfig:
    """Passed to ``timm.optim.create_optimizer_v2``."""

    name: str = "adamw"  # timm optimiser name: adamw, adam, sgd, lamb, ...
    lr: float = 1e-3
    weight_decay: float = 1e-2
    momentum: float = 0.9  # sgd-like optimisers only


@dataclass
class ScheduleConfig:
    """Passed to ``timm.scheduler.create_scheduler_v2`` (stepped per iteration)."""

    name: str = "cosine"  # timm scheduler: cosine, step, multistep, plateau, ...
    warmup_epochs: float = 1
    warmup_lr: float = 1e-5
    min_lr: float = 1e-6
    decay_epochs: float = 4  # step: decay every this many epochs
    decay_rate: float = 0.85  # step: multiply lr by this


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
class AudioTTAConfig:
    time_shifts: list[float] = field(default_factory=list)  # extra views, fractions of the width


@dataclass
class VisualTTAConfig:
    hflip: bool = False  # add the mirrored face as a second view


@dataclass
class AudioBranchConfig:
    model: AudioModelConfig = field(default_factory=AudioModelConfig)
    input_size: list[int] = field(default_factory=lambda: [256, 256])  # (H, W) fed to the model
    augment: AudioAugConfig = field(default_factory=AudioAugConfig)
    tta: AudioTTAConfig = field(default_factory=AudioTTAConfig)


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


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 64  # global: split over the processes of a multi-GPU run
    eval_batch_size: int = 128
    patience: int = 5  # stop a fold after this many epochs without a better AUC; 0 = never
    num_workers: int = 4
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"  # CUDA only; auto = bf16 if supported
    channels_last: bool = True  # CUDA only
    progress: bool = True  # tqdm bars with samples/s
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    audio: AudioBranchConfig = field(default_factory=AudioBranchConfig)
    visual: VisualBranchConfig = field(default_factory=VisualBranchConfig)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"train.epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError("train.batch_size and train.eval_batch_size must be at least 1")
        if len(self.audio.input_size) != 2:
            raise ValueError(f"train.audio.input_size must be [H, W], got {self.audio.input_size}")
