"""The compact cache: face and mouth crops stored as compressed images, read back (old raw caches too)."""

from __future__ import annotations

import numpy as np
import pytest

from mmdf.prepare.mouth import SyncTrack
from mmdf.prepare.store import crop_count, load_crops, pack_mouths, read_sync, save_crops, unpack_mouths


def _faces(n: int = 5, size: int = 64) -> np.ndarray:
    """Smooth, face-like crops (a blob on a gradient), different per frame."""
    yy, xx = np.mgrid[:size, :size] / size
    out = np.zeros((n, size, size, 3), np.uint8)
    for i in range(n):
        blob = np.exp(-((xx - 0.5 - 0.02 * i) ** 2 + (yy - 0.5) ** 2) / 0.05)
        out[i] = (np.stack([blob * 200 + 30, xx * 150 + 20, yy * 100 + 60 + i], -1)).astype(np.uint8)
    return out


@pytest.mark.parametrize("codec,max_error", [("jpeg", 2.0), ("webp", 3.0), ("png", 0.0), ("raw", 0.0)])
def test_face_crops_round_trip(tmp_path, codec, max_error):
    faces = _faces()
    path = tmp_path / "c.npz"
    save_crops(path, faces, codec, 95)
    back = load_crops(path)
    assert back.shape == faces.shape and back.dtype == np.uint8 and crop_count(path) == faces.shape
    assert np.abs(back.astype(int) - faces).mean() <= max_error
    assert np.array_equal(load_crops(path, [3, 1]), back[[3, 1]])  # one crop decoded without the others
    with pytest.raises(IndexError):
        load_crops(path, [5])


def test_jpeg_is_much_smaller_than_raw(tmp_path):
    rng = np.random.default_rng(0)
    faces = np.clip(_faces(8, 128).astype(int) + rng.integers(-4, 5, (8, 128, 128, 3)), 0, 255).astype(np.uint8)
    save_crops(tmp_path / "j.npz", faces, "jpeg", 95)
    save_crops(tmp_path / "r.npz", faces, "raw", 95)
    assert (tmp_path / "j.npz").stat().st_size < 0.5 * (tmp_path / "r.npz").stat().st_size


def test_an_old_raw_npy_cache_is_read_as_it_is(tmp_path):
    faces = _faces()
    np.save(tmp_path / "old.npy", faces)
    assert np.array_equal(load_crops(tmp_path / "old.npy"), faces)
    assert np.array_equal(load_crops(tmp_path / "old.npy", [2]), faces[[2]])
    assert crop_count(tmp_path / "old.npy") == faces.shape


@pytest.mark.parametrize("frames", [1, 30, 130])  # 130: more than one row of tiles, the last one part-filled
def test_mouth_crops_tile_losslessly_with_png(frames):
    mouth = np.random.default_rng(frames).integers(0, 256, (frames, 16, 16), dtype=np.uint8)
    assert np.array_equal(unpack_mouths(pack_mouths(mouth, "png", 95)), mouth)
    assert np.array_equal(unpack_mouths(pack_mouths(mouth, "raw", 95)), mouth)


def test_a_sync_window_keeps_its_stored_mouth_when_lent(tmp_path):
    """Read back and written again (a sync half lent to a sibling cache), the JPEG bytes are copied, not
    re-encoded: the lent window equals the donor's to the bit."""
    t = 40
    mouth = np.repeat(_faces(t, 32)[..., 0:1], 1, -1)[..., 0]
    track = SyncTrack(mouth, np.zeros((t, 4), np.float32), np.zeros(t, np.float32), np.zeros((t, 3), np.float32),
                      np.arange(t) / 25.0, 25.0)
    np.savez(tmp_path / "a.npz", **track.arrays("jpeg", 90))
    again = SyncTrack.load(tmp_path / "a.npz")
    assert np.abs(again.mouth.astype(int) - mouth).mean() < 2.0
    np.savez(tmp_path / "b.npz", **again.arrays("jpeg", 90))
    a, b = read_sync(tmp_path / "a.npz"), read_sync(tmp_path / "b.npz")
    assert np.array_equal(a["stored"]["mouth_data"], b["stored"]["mouth_data"])
    assert np.array_equal(a["mouth"], b["mouth"])
