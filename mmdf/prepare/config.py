"""Parameters of preprocessing; they key the feature cache."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MelConfig:
    """Mel-spectrogram image; defaults reproduce the FFDV reference recipe."""

    sample_rate: int = 22050
    n_mels: int = 128
    n_fft: int = 2048
    hop_length: int = 512
    image_size: int = 256


@dataclass
class FaceConfig:
    """Face sampling, detection and cropping."""

    num_frames: int = 16
    margin: float = 0.3
    crop_size: int = 224


@dataclass
class PrepareConfig:
    workers: int = 0  # 0 = all cores
    mel: MelConfig = field(default_factory=MelConfig)
    faces: FaceConfig = field(default_factory=FaceConfig)
