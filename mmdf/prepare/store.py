"""How cached face and mouth crops are stored: compressed images, a tenth of the raw bytes.

At FFDV's scale (about 320k clips) raw uint8 crops would take about 900 GB
(16 face crops of 224 px are 2.4 MB a clip); JPEG at quality 95 takes about a
tenth of that at a mean absolute error of about one grey level, and decodes
in well under a millisecond a face on one core (``benchmarks/bench_prepare.py
--codecs`` measures JPEG, WebP and PNG on the same crops). The codec is
``prepare.faces.codec`` (``jpeg``, ``webp``, ``png`` or ``raw``) at
``prepare.faces.quality``; both key the cache.

- Face crops: ``faces/<split>/<stem>.npz`` holding ``data`` (every crop's
  encoded bytes, one after the other), ``offsets`` (N + 1) and ``shape``
  (N, S, S, 3), so that one crop is decoded without the others (the visual
  CNN reads one frame per item). ``raw`` keeps the array as it is (``crops``).
- Mouth crops of the sync window: the T grey crops laid out in one tiled
  image (``mouth_data`` and ``mouth_shape`` in the sync ``.npz``; the sync
  branch always reads the whole window, and one image spares T headers).

Caches written before this (faces as a raw ``.npy``, the sync window's raw
``mouth`` array) are read as they are: the readers go by what the file holds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmdf.files import atomic_write

CODECS = {"jpeg": ".jpg", "webp": ".webp", "png": ".png", "raw": None}
TILE_COLUMNS = 64  # mouth crops per row of the tiled image (JPEG's sides stop at 65,535 pixels)


def _params(codec: str, quality: int) -> list[int]:
    import cv2

    if codec == "jpeg":
        return [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    if codec == "webp":
        return [cv2.IMWRITE_WEBP_QUALITY, int(quality)]
    return [cv2.IMWRITE_PNG_COMPRESSION, 3]  # lossless; quality does not apply


def encode_image(image: np.ndarray, codec: str, quality: int) -> np.ndarray:
    """The encoded bytes (uint8) of one RGB (H, W, 3) or grey (H, W) uint8 image."""
    import cv2

    pixels = image[..., ::-1] if image.ndim == 3 else image  # OpenCV writes BGR
    ok, buf = cv2.imencode(CODECS[codec], np.ascontiguousarray(pixels), _params(codec, quality))
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} image as {codec}")
    return buf.reshape(-1)


def decode_image(data: np.ndarray, colour: bool) -> np.ndarray:
    """The RGB (H, W, 3) or grey (H, W) uint8 image of encoded bytes."""
    import cv2

    image = cv2.imdecode(np.asarray(data, dtype=np.uint8), cv2.IMREAD_COLOR if colour else cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError("the cached crop does not decode (a damaged cache file); re-run `mmdf prepare --force`")
    return np.ascontiguousarray(image[..., ::-1]) if colour else image


def save_crops(path: str | Path, crops: np.ndarray, codec: str, quality: int) -> None:
    """Face crops (N, S, S, 3) uint8 into one ``.npz``, each crop encoded on its own (atomic write)."""
    if codec == "raw":
        arrays = {"crops": crops}
    else:
        parts = [encode_image(c, codec, quality) for c in crops]
        offsets = np.cumsum([0] + [len(p) for p in parts]).astype(np.int64)
        data = np.concatenate(parts) if parts else np.zeros(0, np.uint8)
        arrays = {"data": data, "offsets": offsets, "shape": np.asarray(crops.shape, dtype=np.int64)}
    with atomic_write(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def crop_count(path: str | Path) -> tuple[int, ...]:
    """The shape (N, S, S, 3) of a clip's face crops, without decoding them."""
    if str(path).endswith(".npy"):  # a cache of an older mmdf: the raw array
        return tuple(np.load(path, mmap_mode="r").shape)
    with np.load(path, allow_pickle=False) as z:
        return tuple(z["crops"].shape) if "crops" in z.files else tuple(int(v) for v in z["shape"])


def load_crops(path: str | Path, frames: list[int] | np.ndarray | None = None) -> np.ndarray:
    """Face crops (n, S, S, 3) uint8 of a clip: all of them, or those at ``frames`` (decoding only those)."""
    if str(path).endswith(".npy"):  # a cache of an older mmdf: the raw array
        raw = np.load(path, mmap_mode="r")
        return np.array(raw if frames is None else raw[np.asarray(frames, dtype=np.int64)])
    with np.load(path, allow_pickle=False) as z:
        if "crops" in z.files:
            raw = z["crops"]
            return raw if frames is None else raw[np.asarray(frames, dtype=np.int64)]
        data, offsets, shape = z["data"], z["offsets"], tuple(int(v) for v in z["shape"])
    picks = range(shape[0]) if frames is None else [int(f) for f in frames]
    out = np.empty((len(picks), *shape[1:]), dtype=np.uint8)
    for j, i in enumerate(picks):
        if not 0 <= i < shape[0]:
            raise IndexError(f"{path} holds {shape[0]} face crops; asked for crop {i}")
        out[j] = decode_image(data[offsets[i]:offsets[i + 1]], colour=True)
    return out


def pack_mouths(mouth: np.ndarray, codec: str, quality: int) -> dict[str, np.ndarray]:
    """Grey mouth crops (T, S, S) as the arrays the sync ``.npz`` stores: one tiled image, or ``raw``."""
    if codec == "raw" or not len(mouth):
        return {"mouth": mouth}
    t, s = mouth.shape[0], mouth.shape[1]
    cols = min(t, TILE_COLUMNS)
    rows = -(-t // cols)
    grid = np.zeros((rows * cols, s, mouth.shape[2]), dtype=np.uint8)
    grid[:t] = mouth
    tiled = grid.reshape(rows, cols, s, -1).transpose(0, 2, 1, 3).reshape(rows * s, -1)
    return {"mouth_data": encode_image(tiled, codec, quality), "mouth_shape": np.asarray(mouth.shape, np.int64)}


def unpack_mouths(arrays) -> np.ndarray:
    """The grey mouth crops (T, S, S) of a sync ``.npz`` (any mapping of its arrays), tiled or raw."""
    if "mouth" in arrays:
        return np.asarray(arrays["mouth"])
    t, s, w = (int(v) for v in arrays["mouth_shape"])
    tiled = decode_image(arrays["mouth_data"], colour=False)
    cols = tiled.shape[1] // w
    grid = tiled.reshape(-1, s, cols, w).transpose(0, 2, 1, 3).reshape(-1, s, w)
    return np.ascontiguousarray(grid[:t])


def read_sync(path: str | Path) -> dict:
    """Every array of a cached sync window, ``mouth`` decoded (read, then the file closed), and under
    ``stored`` the mouth's arrays as the file holds them."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    stored = {k: v for k, v in arrays.items() if k.startswith("mouth")}
    rest = {k: v for k, v in arrays.items() if not k.startswith("mouth")}
    return {"mouth": unpack_mouths(stored), **rest, "stored": stored}
