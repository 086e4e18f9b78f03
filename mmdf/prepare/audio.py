"""The audio branch's input: a mel-spectrogram image, as the FFDV reference recipe makes it."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from mmdf.prepare.config import MelConfig
from mmdf.prepare.media import load_audio


def mel_image(signal: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """(image_size, image_size) uint8 mel image of a mono signal at ``cfg.sample_rate``.

    Same steps as the reference ``generate_mel_spectrogram``: power mel
    spectrogram, dB relative to the peak, min-max to 0-255 (truncated, as
    ``cv2.normalize`` then ``astype(uint8)`` does), bilinear resize. A constant
    signal gives an all-zero image instead of a division by zero.
    """
    import cv2
    import librosa

    power = np.abs(librosa.stft(signal, n_fft=cfg.n_fft, hop_length=cfg.hop_length)) ** 2.0
    # librosa.feature.melspectrogram's own product, with the filter bank built once, not per clip
    spec = np.einsum("...ft,mf->...mt", power, mel_basis(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax),
                     optimize=True)
    db = librosa.power_to_db(spec, ref=np.max, top_db=cfg.top_db).astype(np.float32)
    # cv2.normalize(NORM_MINMAX) maps a constant array to 0 rather than dividing by zero
    scaled = cv2.normalize(db, None, 0, 255, cv2.NORM_MINMAX)
    image = scaled.astype(np.uint8)
    size = (cfg.image_size, cfg.image_size)
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


@lru_cache(maxsize=8)
def mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> np.ndarray:
    """(n_mels, 1 + n_fft // 2) float32 filter bank, read-only; building it costs as much as a short clip's STFT."""
    import librosa

    basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    basis.setflags(write=False)
    return basis


def prepare_clip_audio(path: str | Path, cfg: MelConfig | None = None) -> np.ndarray:
    """Mel image of one clip, decoded in memory; raises ``MediaError`` (no_audio/corrupt)."""
    cfg = cfg or MelConfig()
    signal = load_audio(path, cfg.sample_rate, cfg.resample_quality, cfg.pad_to_container, cfg.via_rate)
    return mel_image(signal, cfg)
