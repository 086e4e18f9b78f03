"""Statistics features on tiny arrays built here: each cue is found where it was put, degenerate input never raises."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmdf.prepare.config import FaceConfig, MelConfig, PrepareConfig
from mmdf.stats.audio import audio_feature_names, audio_features, row_frequencies
from mmdf.stats.table import stats_table
from mmdf.stats.visual import clip_feature_names, visual_features

CFG = MelConfig(image_size=64)  # 22,050 Hz, 128 mels resized to 64 rows
MARGIN = 0.3


def speech_like(cutoff_hz: float, width: int = 64, seed: int = 0) -> np.ndarray:
    """A (64, width) uint8 mel image: loud, moving bands below ``cutoff_hz``, grey 0 above it."""
    rng = np.random.default_rng(seed)
    freqs = row_frequencies(CFG)
    envelope = 0.5 + 0.5 * np.sin(np.linspace(0, 6 * np.pi, width)) ** 2
    level = 150 + 60 * envelope[None, :] + rng.normal(0, 10, (len(freqs), width))
    level[freqs > cutoff_hz] = 0
    return np.clip(level, 0, 255).astype(np.uint8)


def test_cutoff_found_below_the_band_limit():
    low, high = audio_features(speech_like(4000), CFG), audio_features(speech_like(8000), CFG)
    freqs = row_frequencies(CFG)
    step = np.diff(freqs).max()
    for g in (10, 40):
        assert 4000 - step <= low[f"cutoff_hz_g{g}"] <= 4000 + step
        assert 8000 - step <= high[f"cutoff_hz_g{g}"] <= 8000 + step
    assert low["hf4k_share"] < 1e-3 < high["hf4k_share"]
    assert low["rolloff99_hz_mean"] < 4000 + step < high["rolloff99_hz_mean"]


def test_silent_image_gives_nan_or_zero_never_raises():
    out = audio_features(np.zeros((64, 64), np.uint8), CFG)
    assert list(out) == audio_feature_names(CFG)
    assert np.isnan(out["cutoff_hz_g10"]) and np.isnan(out["flatness_mean"]) and np.isnan(out["envcorr000"])
    assert out["band00_std"] == 0.0 and out["band00_dabs"] == 0.0
    assert out["silence_share"] == 1.0
    narrow = audio_features(np.full((64, 1), 7, np.uint8), CFG)  # one frame: no differences over time
    assert np.isnan(narrow["band00_dabs"]) and len(narrow) == len(out)


def test_silences_at_the_start_and_end_are_measured():
    image = speech_like(8000)
    image[:, :16] = 0  # first quarter silent
    image[:, -8:] = 0  # last eighth silent
    out = audio_features(image, CFG)
    assert out["lead_silence"] == pytest.approx(0.25)
    assert out["trail_silence"] == pytest.approx(0.125)
    assert out["silence_share"] == pytest.approx(0.375)


def test_envelope_correlation_tells_a_band_that_follows_the_speech():
    image = speech_like(8000).astype(float)
    image[0] = 100  # lowest band: steady hum
    image[1] = 60 + 0.5 * image[10]  # follows the speech
    image[2] = 100 + np.random.default_rng(1).normal(0, 20, image.shape[1])  # noise, independent of it
    out = audio_features(image.astype(np.uint8), CFG)
    assert np.isnan(out["envcorr000"])  # constant band: undefined
    assert out["envcorr001"] > 0.5 > abs(out["envcorr002"])


def crops(n: int, centre_rgb=(180, 140, 120), ring_rgb=(180, 140, 120), blur_centre: bool = False, seed: int = 0):
    """(n, 64, 64, 3) crops: textured ring and face square of given colours, the face optionally blurred."""
    import cv2

    rng = np.random.default_rng(seed)
    out = np.empty((n, 64, 64, 3), np.uint8)
    lo, hi = 12, 52  # face square of side 64 / 1.6 = 40
    for i in range(n):
        img = np.empty((64, 64, 3), np.float32)
        img[:] = ring_rgb
        img[lo:hi, lo:hi] = centre_rgb
        img += rng.normal(0, 20, (64, 64, 1))
        img = np.clip(img, 1, 255).astype(np.uint8)
        if blur_centre:
            img[lo:hi, lo:hi] = cv2.GaussianBlur(img, (0, 0), 2.0)[lo:hi, lo:hi]
        out[i] = img
    return out


def test_colour_mismatch_of_face_and_ring_is_reflected():
    same = visual_features(crops(3), MARGIN)
    redder = visual_features(crops(3, centre_rgb=(230, 110, 100)), MARGIN)
    assert abs(same["ring_dA_mean_mean"]) < 2
    assert redder["ring_dA_mean_mean"] > abs(same["ring_dA_mean_mean"]) + 10  # LAB a*: towards red


def test_sharpness_ratio_orders_blurred_and_sharp_faces():
    sharp = visual_features(crops(3), MARGIN)
    blurred = visual_features(crops(3, blur_centre=True), MARGIN)
    assert blurred["sharp_ring_logratio_mean"] < sharp["sharp_ring_logratio_mean"] - 0.5
    assert blurred["hf_share_mean"] < sharp["hf_share_mean"]


def test_texture_profile_rises_outside_a_blurred_centre_and_skips_padding():
    """A swap's low-resolution inner face: fine texture missing inside a disc, present around it."""
    import cv2

    sharp = crops(3)
    swapped = sharp.copy()
    y, x = np.mgrid[:64, :64] - 31.5
    radius = np.hypot(y, x) / 20  # units of half the face square's side (40 px)
    inner = radius < 0.6  # rings 0-2 of 8 (0.2 wide each); ring 3 on sharp
    for img in swapped:
        img[inner] = cv2.GaussianBlur(img, (0, 0), 2.0)[inner]
    flat, bumped = visual_features(sharp, MARGIN), visual_features(swapped, MARGIN)
    assert all(abs(flat[f"hf_ring{k}_mean"]) < 0.15 for k in range(8))  # the same texture everywhere
    assert bumped["hf_ring4_mean"] > 0.5 and bumped["hf_ring7_mean"] > 0.5
    padded = sharp.copy()
    padded[:, radius >= 1.4] = 0  # the frame's outside, as near an image edge
    out = visual_features(padded, MARGIN)
    assert np.isnan(out["hf_ring7_mean"]) and abs(out["hf_ring6_mean"]) < 0.15


def test_single_crop_has_no_flicker_and_zero_crops_are_all_nan():
    one = visual_features(crops(1), MARGIN)
    assert list(one) == clip_feature_names()
    assert np.isnan(one["sharp_face_flicker"]) and np.isnan(one["pix_flicker_face"]) and np.isnan(one["psd00_std"])
    assert np.isfinite(one["sharp_face_mean"])
    none = visual_features(np.zeros((0, 64, 64, 3), np.uint8), MARGIN)
    assert list(none) == clip_feature_names() and all(np.isnan(v) for v in none.values())


def test_flicker_is_larger_for_a_face_that_changes_between_frames():
    steady = crops(4, seed=1)
    flicker = steady.copy()
    flicker[1::2, 12:52, 12:52] = np.clip(flicker[1::2, 12:52, 12:52].astype(int) + 40, 0, 255)
    a, b = visual_features(steady, MARGIN), visual_features(flicker, MARGIN)
    assert b["face_L_mean_flicker"] > a["face_L_mean_flicker"] + 5
    assert b["pix_flicker_ratio"] > a["pix_flicker_ratio"]


def manifest_for(tmp_path, arrays: dict[str, np.ndarray | None], kind: str) -> pd.DataFrame:
    status_col, file_col = ("audio_status", "mel_file") if kind == "audio" else ("visual_status", "faces_file")
    rows = []
    for name, array in arrays.items():
        path = ""
        if array is not None:
            path = str(tmp_path / f"{name}.npy")
            np.save(path, array)
        rows.append({"split": "train", "video_name": f"{name}.mp4", status_col: "ok" if array is not None else "no_audio",
                     file_col: path})
    return pd.DataFrame(rows, index=[10 + i for i in range(len(rows))])


def test_table_keeps_every_row_and_reuses_its_cache(tmp_path):
    manifest = manifest_for(tmp_path, {"a": speech_like(4000), "b": speech_like(8000), "c": None}, "audio")
    cache = tmp_path / "audio_stats.parquet"
    params = PrepareConfig(mel=CFG)
    table = stats_table(manifest, "audio", params, cache, progress=False)
    assert list(table.index) == list(manifest.index) and list(table.columns[:2]) == ["split", "video_name"]
    assert table.loc[12].iloc[2:].isna().all() and table.loc[10, "cutoff_hz_g10"] < table.loc[11, "cutoff_hz_g10"]
    (tmp_path / "a.npy").unlink()  # a reused row is not read again
    again = stats_table(manifest, "audio", params, cache, progress=False)
    pd.testing.assert_frame_equal(table, again)
    with pytest.raises(FileNotFoundError):  # other parameters: recomputed, so the file is needed
        stats_table(manifest, "audio", PrepareConfig(mel=MelConfig(image_size=64, n_mels=64)), cache, progress=False)


def test_visual_table_takes_the_margin_from_the_config(tmp_path):
    manifest = manifest_for(tmp_path, {"a": crops(2), "b": crops(2, centre_rgb=(230, 110, 100))}, "visual")
    by_config = stats_table(manifest, "visual", FaceConfig(margin=MARGIN), None, progress=False)
    by_float = stats_table(manifest, "visual", MARGIN, None, progress=False)
    pd.testing.assert_frame_equal(by_config, by_float)
    assert by_config.loc[11, "ring_dA_mean_mean"] > by_config.loc[10, "ring_dA_mean_mean"] + 10
