"""The audio branch's input: a mel-spectrogram image, as the FFDV reference recipe makes it."""

from __future__ import annotations

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

    spec = librosa.feature.melspectrogram(
        y=signal, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
        n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax,
    )
    db = librosa.power_to_db(spec, ref=np.max, top_db=cfg.top_db).astype(np.float32)
    # cv2.normalize(NORM_MINMAX) maps a constant array to 0 rather than dividing by zero
    scaled = cv2.normalize(db, None, 0, 255, cv2.NORM_MINMAX)
    image = scaled.astype(np.uint8)
    size = (cfg.image_size, cfg.image_size)
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def prepare_clip_audio(path: str | Path, cfg: MelConfig | None = None) -> np.ndarray:
    """Mel image of one clip, decoded in memory; raises ``MediaError`` (no_audio/corrupt)."""
    cfg = cfg or MelConfig()
    signal = load_audio(path, cfg.sample_rate, cfg.resample_quality, cfg.pad_to_container, cfg.via_rate)
    return mel_image(signal, cfg)
