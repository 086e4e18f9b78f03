"""Hand-made statistics of a clip's cached face crops, for a linear or tree model on few clips.

A face swap pastes a donor face into the frame: its colour, sharpness and
high-frequency content differ from the skin and background around it, and
it flickers from frame to frame. Each cached crop is the face box squared and
widened by ``margin`` of its side on each side, so its central square of side
``S / (1 + 2 margin)`` is the face and the rest is the surround (the margin
ring). Per crop these features compare the two (and the face's core against
its own border, where a blending seam lies); per clip they are summarised by
their mean and standard deviation over the crops and their flicker (mean
absolute change from one crop to the next).

A swap is blended in through a mask inside the face box (the landmarks' hull
in real swappers), so the fine texture drops inside the mask (the donor is
rendered at a lower resolution than the frame, Li and Lyu, "Exposing DeepFake
videos by detecting face warping artifacts", 2019) and peaks on its edge (the
blending boundary of Li et al., "Face X-ray", 2020). Where that edge lies
varies, so ``hf_ringK`` is the whole radial profile of the finest band's
energy, in ``N_RINGS`` rings from the face centre to the crop's edge, against
the face's centre: a real face's texture runs on to its edge, a swapped one's
rises at the seam and stays above the blurred centre beyond it.

High-frequency energy follows Durall et al., "Unmasking DeepFakes with simple
features" (2019): the azimuthal average of the 2-D power spectrum of the grey
face, here in ``N_RADIAL`` radial bins.
"""

from __future__ import annotations

import numpy as np

# Bump when a feature's definition changes; it keys the cached feature tables.
FEATURE_VERSION = 2
N_RADIAL = 16  # radial bins of the face's power spectrum
N_RINGS = 8  # rings of the fine-texture profile, from the face centre to the crop's edge
CENTRE_RINGS = 2  # the profile's reference: the innermost rings (the central face, inside any blend mask)
CORE = 0.5  # the face's core: this share of the face square's side, centred
CHANNELS = ("L", "A", "B")  # CIELAB (OpenCV's 8-bit scaling): lightness and two colour-opponent axes


def visual_features(crops: np.ndarray, margin: float) -> dict[str, float]:
    """Flat, stably named statistics of one clip's (N, S, S, 3) uint8 RGB face crops.

    Zero crops give all NaN; a single crop gives NaN standard deviations and
    flickers. Never raises on a degenerate input.
    """
    crops = np.asarray(crops)
    names = per_crop_names()
    if crops.ndim != 4 or crops.shape[0] == 0 or crops.shape[-1] != 3 or min(crops.shape[1:3]) < 8:
        return {k: np.nan for k in clip_feature_names()}
    per_crop = [crop_features(c, margin) for c in crops]
    table = np.array([[f[k] for k in names] for f in per_crop], dtype=float)
    out = summarise(table, names)
    out.update(pixel_flicker(crops, margin))
    out["n_crops"] = float(len(crops))
    return out


def clip_feature_names() -> list[str]:
    """The keys :func:`visual_features` returns, in order."""
    names = [f"{n}_{s}" for n in per_crop_names() for s in ("mean", "std", "flicker")]
    return names + ["pix_flicker_face", "pix_flicker_ring", "pix_flicker_ratio", "n_crops"]


def summarise(table: np.ndarray, names: list[str]) -> dict[str, float]:
    """Mean, std and flicker (mean |change| between consecutive crops) of each per-crop feature (N, F)."""
    import warnings

    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a feature NaN in every crop stays NaN, silently
        mean = np.nanmean(table, axis=0) if np.isfinite(table).any() else np.full(len(names), np.nan)
        if len(table) > 1:
            std = np.nanstd(table, axis=0)
            flicker = np.nanmean(np.abs(np.diff(table, axis=0)), axis=0)
        else:
            std = flicker = np.full(len(names), np.nan)
    out = {}
    for i, n in enumerate(names):
        out.update({f"{n}_mean": float(mean[i]), f"{n}_std": float(std[i]), f"{n}_flicker": float(flicker[i])})
    return out


def regions(size: int, margin: float) -> tuple[slice, np.ndarray, np.ndarray, np.ndarray]:
    """The face square (a slice for both axes) and boolean (S, S) masks of the ring, core and face border."""
    face = size / (1 + 2 * margin)
    lo = int(round((size - face) / 2))
    hi = max(size - lo, lo + 1)
    core_lo = int(round(lo + (hi - lo) * (1 - CORE) / 2))
    core_hi = max(hi - (core_lo - lo), core_lo + 1)
    face_mask = np.zeros((size, size), bool)
    face_mask[lo:hi, lo:hi] = True
    core = np.zeros((size, size), bool)
    core[core_lo:core_hi, core_lo:core_hi] = True
    return slice(lo, hi), ~face_mask, core, face_mask & ~core


def per_crop_names() -> list[str]:
    """The per-crop feature names (before the clip summary)."""
    names = [f"face_{c}_mean" for c in CHANNELS] + [f"face_{c}_std" for c in CHANNELS]
    for pair in ("ring", "border"):
        names += [f"{pair}_d{c}_mean" for c in CHANNELS] + [f"{pair}_logr{c}_std" for c in CHANNELS]
    names += ["sharp_face", "sharp_ring_logratio", "sharp_border_logratio"]
    names += [f"psd{k:02d}" for k in range(N_RADIAL)] + ["hf_share"]
    return names + [f"hf_ring{k}" for k in range(N_RINGS)]


def crop_features(crop: np.ndarray, margin: float) -> dict[str, float]:
    """Colour, sharpness and spectrum of one (S, S, 3) uint8 RGB crop: face against ring and core against border.

    Black pixels are the frame's outside (crops near an edge are padded
    black) and are left out of the ring.
    """
    import cv2

    square, ring, core, border = regions(crop.shape[0], margin)
    ring = ring & crop.any(axis=2)
    lab = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2LAB).astype(np.float32)
    grey = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY).astype(np.float32)
    face = lab[square, square].reshape(-1, 3)
    out = dict(zip([f"face_{c}_mean" for c in CHANNELS], face.mean(0).tolist()))
    out.update(zip([f"face_{c}_std" for c in CHANNELS], face.std(0).tolist()))
    out.update(_colour_contrast("ring", face, lab[ring]))
    out.update(_colour_contrast("border", lab[core], lab[border]))
    lap = cv2.Laplacian(grey, cv2.CV_32F)
    sharp = {name: _var(lap[mask]) for name, mask in (("core", core), ("border", border), ("ring", ring))}
    sharp["face"] = _var(lap[square, square])
    out["sharp_face"] = float(np.log10(sharp["face"] + 1e-6)) if np.isfinite(sharp["face"]) else np.nan
    out["sharp_ring_logratio"] = _log_ratio(sharp["face"], sharp["ring"])
    out["sharp_border_logratio"] = _log_ratio(sharp["core"], sharp["border"])
    out.update(radial_spectrum(grey[square, square]))
    out.update(texture_rings(grey, crop.any(axis=2), margin))
    return out


def _colour_contrast(name: str, inner: np.ndarray, outer: np.ndarray) -> dict[str, float]:
    """Mean difference and log std ratio per LAB channel of two (n, 3) pixel sets (NaN if one is empty)."""
    if len(inner) < 2 or len(outer) < 2:
        return {f"{name}_{k}{c}_{s}": np.nan for k, s in (("d", "mean"), ("logr", "std")) for c in CHANNELS}
    diff = inner.mean(0) - outer.mean(0)
    ratio = [_log_ratio(a, b) for a, b in zip(inner.std(0), outer.std(0))]
    out = {f"{name}_d{c}_mean": float(d) for c, d in zip(CHANNELS, diff)}
    out.update({f"{name}_logr{c}_std": r for c, r in zip(CHANNELS, ratio)})
    return out


def _var(values: np.ndarray) -> float:
    return float(values.var()) if values.size > 1 else np.nan


def _log_ratio(a: float, b: float, eps: float = 1e-3) -> float:
    """log10(a / b), with a small floor; NaN when either is undefined."""
    if not (np.isfinite(a) and np.isfinite(b)):
        return np.nan
    return float(np.log10((a + eps) / (b + eps)))


def radial_spectrum(grey: np.ndarray, n_bins: int = N_RADIAL) -> dict[str, float]:
    """Azimuthal average of the log power spectrum of a grey (H, W) patch, in ``n_bins`` radial bins.

    A Hann window stops the patch's edges from posing as high frequencies;
    the bins are centred on their mean (the shape, not the contrast, is the
    cue), and ``hf_share`` is the share of power beyond half the Nyquist radius.
    """
    from scipy import ndimage

    h, w = grey.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fftshift(np.fft.fft2((grey - grey.mean()) * window))) ** 2
    fy, fx = np.meshgrid(np.fft.fftshift(np.fft.fftfreq(h)), np.fft.fftshift(np.fft.fftfreq(w)), indexing="ij")
    radius = np.sqrt(fx ** 2 + fy ** 2) / 0.5  # 1 = Nyquist along an axis
    labels = np.minimum((radius * n_bins).astype(int), n_bins)  # corners beyond Nyquist: label n_bins, dropped
    logp = np.log10(power + 1e-8)
    profile = np.asarray(ndimage.mean(logp, labels=labels, index=np.arange(n_bins)))
    total = power[labels < n_bins].sum()
    hf = power[(radius > 0.5) & (labels < n_bins)].sum() / total if total > 0 else np.nan
    out = {f"psd{k:02d}": float(v) for k, v in enumerate(profile - np.nanmean(profile))}
    out["hf_share"] = float(hf)
    return out


def texture_rings(grey: np.ndarray, valid: np.ndarray, margin: float, n_rings: int = N_RINGS) -> dict[str, float]:
    """log10 energy of the finest band (grey minus its sigma-1 blur) per ring, minus that of the face's centre.

    Ring ``k`` covers radii ``[k, k + 1) * (1 + 2 margin) / n_rings`` in units
    of half the face square's side (circles about the crop centre; the last
    ring reaches the crop's edge). Only ``valid`` (S, S) pixels count (black
    padding is the frame's outside), less the blur's reach beside the padding,
    whose edge is no texture; a ring without any is NaN.
    """
    import cv2
    from scipy import ndimage

    size = grey.shape[0]
    fine = (grey - cv2.GaussianBlur(grey, (0, 0), 1.0)) ** 2
    valid = cv2.erode(valid.astype(np.uint8), np.ones((7, 7), np.uint8), borderValue=1) > 0  # 3 sigma
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    radius = np.hypot(y, x) / (size / (1 + 2 * margin) / 2)
    labels = np.minimum((radius / (1 + 2 * margin) * n_rings).astype(int), n_rings)
    labels[~valid] = n_rings  # label n_rings (corners, padding): dropped
    counts = np.bincount(labels.ravel(), minlength=n_rings + 1)[:n_rings]
    energy = np.asarray(ndimage.sum(fine, labels=labels, index=np.arange(n_rings)))
    with np.errstate(invalid="ignore", divide="ignore"):
        profile = np.where(counts > 0, np.log10(energy / np.maximum(counts, 1) + 1e-3), np.nan)
        centre = np.nanmean(profile[:CENTRE_RINGS]) if np.isfinite(profile[:CENTRE_RINGS]).any() else np.nan
    return {f"hf_ring{k}": float(v - centre) for k, v in enumerate(profile)}


def pixel_flicker(crops: np.ndarray, margin: float) -> dict[str, float]:
    """Mean absolute grey change between consecutive crops, in the face and in the ring, and their log ratio.

    The crops follow the face, so a real face changes about as much as its
    surround; a pasted one flickers more. NaN with fewer than two crops.
    """
    names = ("pix_flicker_face", "pix_flicker_ring", "pix_flicker_ratio")
    if len(crops) < 2:
        return dict.fromkeys(names, np.nan)
    grey = crops.astype(np.float32).mean(axis=3)
    change = np.abs(np.diff(grey, axis=0)).mean(axis=0)
    square, ring, _, _ = regions(crops.shape[1], margin)
    ring = ring & crops.any(axis=3).all(axis=0)
    face = float(change[square, square].mean())
    ring_change = float(change[ring].mean()) if ring.any() else np.nan
    return dict(zip(names, (face, ring_change, _log_ratio(face, ring_change))))
