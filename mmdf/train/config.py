"""Parameters of branch training.

The loop settings (epochs, optimiser, schedule, precision) are shared; what
differs between branches (backbone, input size, augmentation, test-time
augmentation, frame aggregation) is each branch's own section
``train.<branch>``, a dataclass defined in the branch's module
(:mod:`mmdf.train.branches`, whose :func:`~mmdf.train.branches.train_config_type`
adds them to :class:`TrainConfig`). One config file usually trains one branch
(``configs/audio.yaml``, ``configs/visual.yaml``); the branch itself is
chosen on the command line (``mmdf train <branch>``).
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
    # 0: timm's own head (global average pooling); k > 0: average over time (the input's width)
    # only and keep k bins over frequency (its height), for spectrograms (see models.TimePooled)
    freq_bins: int = 0


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
    threads: int | None = None  # torch CPU threads; null = torch's default (the cores). Fix it for figures
    # that repeat to the last digit: float sums are ordered by the thread count
    deterministic: bool = False  # torch's deterministic algorithms (and no cuDNN autotuning): slower on GPUs
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"train.epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError("train.batch_size and train.eval_batch_size must be at least 1")

    def section(self, name: str):
        """The config section ``train.<name>`` of a branch."""
        return getattr(self, name)
