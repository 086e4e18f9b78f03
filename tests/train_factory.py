"""Tiny synthetic prepare caches for the training tests (no video decoding).

Fakes carry a learnable mark (a bright high-frequency band in the mel image,
a bright square on the face crop), so a 100k-parameter timm model separates
them within an epoch or two on CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mmdf.run_config import Config, load_config
from mmdf.prepare.manifest import assemble_manifest
from mmdf.prepare.row import ManifestRow

def make_manifest(root: Path, n_train: int = 24, n_val: int = 8, n_test: int = 6, size: int = 32,
                  frames: int = 3, no_audio: int = 2, no_face: int = 2, seed: int = 0) -> pd.DataFrame:
    """A manifest (the prepare step's, :mod:`mmdf.prepare.manifest`) with cached .npy features under ``root``.

    The first ``no_audio`` train clips have no audio, the next ``no_face`` no
    face (alternating real/fake), so both classes keep usable clips.
    """
    rng = np.random.default_rng(seed)
    cache = Path(root) / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    labels, rows = [], []
    for split_no, (split, n) in enumerate((("train", n_train), ("val", n_val), ("test", n_test))):
        for i in range(n):
            name = f"{split}_{i:03d}.mp4"
            target = i % 2
            audio_ok = not (split == "train" and i < no_audio)
            visual_ok = not (split == "train" and no_audio <= i < no_audio + no_face)
            mel = rng.integers(0, 120, (size, size), dtype=np.uint8)
            faces = rng.integers(0, 120, (frames, size, size, 3), dtype=np.uint8)
            if target:
                mel[: size // 4] += 120  # high frequencies (top rows) louder
                faces[:, size // 4: size // 2, size // 4: size // 2] += 120
            mel_file = faces_file = ""
            if audio_ok:
                mel_file = str(cache / f"{name}.mel.npy")
                np.save(mel_file, mel)
            if visual_ok:
                faces_file = str(cache / f"{name}.faces.npy")
                np.save(faces_file, faces)
            own = np.random.default_rng([seed, split_no, i])  # its own stream: the other features stay as they were
            sync_file = write_sync_window(cache / f"{name}.sync.npz", own, in_sync=not target) \
                if audio_ok and visual_ok else ""
            status = "ok" if audio_ok and visual_ok else ("no_audio" if not audio_ok else "no_face")
            labels.append({"split": split, "video_name": name, "target": target if split != "test" else pd.NA,
                           "path": str(Path(root) / name)})
            rows.append(ManifestRow(
                split, name, status=status, audio_status="ok" if audio_ok else "no_audio",
                visual_status="ok" if visual_ok else "no_face", duration=2.0, has_audio=audio_ok,
                frames_sampled=frames, frames_with_face=frames if visual_ok else 0,
                face_conf_mean=0.99 if visual_ok else np.nan, mel_file=mel_file, faces_file=faces_file,
                sync_status=status, sync_file=sync_file))
    return assemble_manifest(pd.DataFrame(labels), rows, cache, absolute=False)


def write_sync_window(path: Path, rng: np.random.Generator, in_sync: bool, frames: int = 30,
                      size: int = 48, n_mels: int = 40) -> str:
    """A cached sync window (:class:`mmdf.prepare.mouth.SyncTrack`): a mouth that opens (brightens) with
    the voice's loudness, or (``in_sync=False``) with another voice's."""
    from mmdf.prepare.mouth import SyncTrack

    loud = (rng.random(frames) < 0.5).astype(np.float32)
    shown = loud if in_sync else rng.permutation(loud)
    mouth = np.clip(rng.integers(0, 60, (frames, size, size)) + 150 * shown[:, None, None], 0, 255).astype(np.uint8)
    mel = (rng.normal(0, 0.3, (frames, n_mels)) + 2 * loud[:, None]).astype(np.float32)
    track = SyncTrack(mouth, mel, (40 * loud - 60).astype(np.float32), rng.normal(0, 1, (frames, 3)).astype(np.float32),
                      np.arange(frames) / 25.0, 25.0)
    np.savez(path, **track.arrays())
    return str(path)


TINY = [
    "train.epochs=2", "train.batch_size=8", "train.eval_batch_size=16", "train.num_workers=0",
    "train.progress=false", "train.patience=0",
    "train.optimizer.lr=0.01", "train.schedule.warmup_epochs=0",
    "train.audio.model.name=test_efficientnet", "train.audio.model.pretrained=false",
    "train.audio.input_size=[32,32]",
    "train.visual.model.name=test_efficientnet", "train.visual.model.pretrained=false",
    "train.visual.input_size=32",
    "train.sync.window=10", "train.sync.pairs_per_clip=8", "train.sync.eval_windows=2",
    "folds.n_splits=2",
]


def tiny_config(tmp: Path, experiment: str = "t", extra: list[str] | tuple = ()) -> Config:
    """A config cut to seconds: tiny timm model, 32x32 inputs, 2 folds, 2 epochs."""
    return load_config(None, [f"runs_dir={tmp / 'runs'}", f"experiment={experiment}",
                              f"data.root={tmp / 'data'}", *TINY, *extra])
