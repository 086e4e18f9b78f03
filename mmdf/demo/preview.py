"""A contact sheet of the demo dataset, to see what the clips look and sound like.

Each row is one clip: four frames, then its mel spectrogram as the audio
branch sees it (128 mel bands over 0-11 kHz, low frequencies at the bottom);
the caption gives the kind and the hard case. Visual fakes show a blurred,
colour-shifted inner face with a seam; audio fakes an empty band above 8 kHz;
sync fakes look and sound real (the caption says how they are out of step).
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd

from mmdf.demo.plan import KINDS, SPLIT_DIRS

TILE = 160


def _frames(path: Path, n: int = 4) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    picks = np.linspace(0, len(frames) - 1, n).round().astype(int)
    return [cv2.resize(frames[i], (TILE, TILE), interpolation=cv2.INTER_AREA) for i in picks]


def _mel_tile(path: Path) -> np.ndarray:
    """The reference recipe's mel image (22.05 kHz, 128 mels, dB, min-max to 0-255), coloured."""
    import librosa

    with av.open(str(path)) as c:
        if not c.streams.audio:
            tile = np.full((TILE, TILE, 3), 40, np.uint8)
            cv2.putText(tile, "no audio track", (10, TILE // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
            return tile
        resampler = av.AudioResampler(format="flt", layout="mono", rate=22050)
        chunks = [r.to_ndarray().reshape(-1) for f in c.decode(audio=0) for r in resampler.resample(f)]
    y = np.concatenate(chunks) if chunks else np.zeros(22050, np.float32)
    S = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=22050, n_mels=128), ref=np.max)
    img = cv2.normalize(S, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)[::-1]  # low bands at the bottom
    img = cv2.resize(img, (TILE, TILE), interpolation=cv2.INTER_LINEAR)
    return cv2.applyColorMap(img, cv2.COLORMAP_MAGMA)[:, :, ::-1]


def _pick_rows(manifest: pd.DataFrame, n_rows: int) -> pd.DataFrame:
    """Two clips of each kind, then one per hard case, from train first."""
    order = {"train": 0, "val": 1, "test": 2}
    m = manifest.assign(_o=manifest["split"].map(order)).sort_values(["_o"], kind="stable")
    normal = m[m["hard_case"].fillna("") == ""]
    rows = [normal[normal["kind"] == k].head(2) for k in KINDS]
    rows.append(m[m["hard_case"].fillna("") != ""].drop_duplicates("hard_case"))
    return pd.concat(rows).head(n_rows)


def write_preview(out: str | Path, n_rows: int = 14) -> Path:
    """Write ``out/preview.png`` from a finished demo dataset and return its path."""
    out = Path(out)
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    rows = []
    for _, r in _pick_rows(manifest, n_rows).iterrows():
        path = out / SPLIT_DIRS[r["split"]] / r["video_name"]
        tiles = _frames(path)
        row = np.concatenate([*tiles, _mel_tile(path)], axis=1)
        caption = f"{r['kind']}{' / ' + r['hard_case'] if r['hard_case'] else ''}  {r['identity']}"
        if r["swap_identity"]:
            caption += f" <- {r['swap_identity']}"
        if r.get("sync_fake_method", ""):
            caption += f"  mouth: {r['sync_fake_method']}"
        cv2.rectangle(row, (0, 0), (row.shape[1], 18), (0, 0, 0), -1)
        cv2.putText(row, caption, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA)
        rows.append(row)
    sheet = np.concatenate(rows, axis=0)
    path = out / "preview.png"
    cv2.imwrite(str(path), sheet[:, :, ::-1])
    return path
