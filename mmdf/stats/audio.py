"""Hand-made statistics of a cached mel image, for a linear or tree model on few clips.

A CNN needs thousands of clips to find what a vocoder leaves behind; these
numbers name it directly: the level and spread of each mel band over time and
how fast it moves, the spectral shape (flatness, roll-off, share of energy
above 4 kHz), the band cut-off (vocoders and codecs stop at a fixed frequency,
recordings run up to the Nyquist frequency), the silences, and the spectrum's
fine structure: how much the level steps from one mel band to the next, which
a vocoder smooths or sharpens whoever speaks.

The features fall into groups (:data:`GROUPS`, :func:`feature_groups`) that a
statistics model can weigh separately: which of them carries over to unseen
speakers and generators differs between data sets.

They are computed from the uint8 image ``mmdf prepare`` caches (row 0 = lowest
mel band, columns = time frames), so no clip is decoded again. The image's grey
levels map back to dB through the recipe (``power_to_db(ref=max, top_db)``
then min-max to 0-255): grey 255 is the clip's peak, grey 0 is ``top_db``
below it whenever the clip spans that range, as speech does.
"""

from __future__ import annotations

import numpy as np

from mmdf.prepare.config import MelConfig

# Bump when a feature's definition changes; it keys the cached feature tables.
FEATURE_VERSION = 2  # 2: the fine-structure group
N_BANDS = 32  # image rows are pooled into this many bands for the per-band level statistics
# Bands of the envelope correlation: one per mel filter of the default recipe. The
# lowest filters (below ~50 Hz) carry the cue, so coarser pooling loses it.
N_CORR_BANDS = 128
QUANTILES = (0.1, 0.5, 0.9)
# The per-band level statistics: together they are the clip's long-term spectrum, i.e. the
# speaker's timbre (and the channel): a model fitted on them alone may learn who speaks.
LEVEL_STATS = ("mean", "std", "q10", "q50", "q90")
N_FINE_BANDS = 16  # bands of the fine-structure statistics (coarser pooling transferred better across sets)
FINE_QUANTILES = (0.25, 0.5, 0.9)
# feature group -> how its names start; every feature belongs to exactly one group
GROUPS = {
    "level": tuple(f"_{s}" for s in LEVEL_STATS),  # band<b>_<stat>: matched on the suffix, see feature_groups
    "dynamics": ("_dabs", "_dstd"),
    "envelope": ("envcorr",),
    "shape": ("flatness", "rolloff", "hf4k", "hf7k", "centroid", "cutoff"),
    "silence": ("silence_share", "lead_silence", "trail_silence"),
    "fine": ("fine",),
}
CUTOFF_FLOORS = (10, 40)  # grey levels (of 255) a band's 90th percentile must pass to count as "has energy"
SILENCE_DB = 35.0  # a frame this far below the loudest frame is silent
NOMINAL_TOP_DB = 80.0  # dB span of the grey scale when the recipe has no top_db


def row_frequencies(cfg: MelConfig, height: int | None = None) -> np.ndarray:
    """Centre frequency (Hz) of each image row, (height,).

    librosa's mel filter ``i`` is centred on ``mel_frequencies(n_mels + 2)[i + 1]``;
    the image's rows are those bands resized (bilinear, half-pixel centres) to
    ``height`` rows, so a row sits between two band centres.
    """
    height = cfg.image_size if height is None else height
    fmax = cfg.fmax if cfg.fmax is not None else cfg.sample_rate / 2
    centres = _mel_centres(cfg.n_mels, cfg.fmin, fmax)
    pos = (np.arange(height) + 0.5) * cfg.n_mels / height - 0.5
    return np.interp(pos, np.arange(cfg.n_mels), centres)


def _mel_centres(n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    import librosa

    return librosa.mel_frequencies(n_mels=n_mels + 2, fmin=fmin, fmax=fmax)[1:-1]


def audio_features(mel: np.ndarray, cfg: MelConfig, n_bands: int = N_BANDS) -> dict[str, float]:
    """Flat, stably named statistics of one (H, W) uint8 mel image.

    A constant image (what the recipe makes of a silent clip) has no level
    information left: it counts as all silence, its band statistics are its
    constant grey with zero spread, and spectral-shape and cut-off features
    are NaN. Never raises on a degenerate image.
    """
    grey = np.asarray(mel, dtype=np.float32)
    if grey.ndim != 2 or grey.size == 0:
        return {k: np.nan for k in audio_feature_names(cfg, n_bands)}
    freqs = row_frequencies(cfg, grey.shape[0])
    out = band_statistics(grey / 255.0, n_bands)
    out.update(envelope_correlation(grey, N_CORR_BANDS))
    out.update(fine_structure(grey / 255.0, _voiced_grey(grey, cfg), N_FINE_BANDS))
    if grey.max() == grey.min():
        out.update({k: np.nan for k in _shape_names()})
        out.update(silence_share=1.0, lead_silence=1.0, trail_silence=1.0)
        return out
    power = grey_to_power(grey, cfg)
    out.update(spectral_shape(power, freqs))
    out.update(cutoff_features(grey, freqs))
    out.update(silence_features(power))
    return out


def audio_feature_names(cfg: MelConfig, n_bands: int = N_BANDS) -> list[str]:
    """The keys :func:`audio_features` returns, in order (from a synthetic image)."""
    rng = np.random.default_rng(0)
    probe = rng.integers(0, 256, size=(cfg.image_size, max(cfg.image_size, 8)), dtype=np.uint8)
    return list(audio_features(probe, cfg, n_bands))


def feature_groups(names) -> dict[str, list[str]]:
    """Group name -> its features among ``names`` (groups without one are left out).

    A model weighs the groups instead of a group being dropped by hand: on
    the voice-conversion set the level group alone fits the training speakers
    (val AUC 0.86) while on another real set the levels were what transferred.
    """
    out: dict[str, list[str]] = {}
    for n in names:
        if n.startswith("band"):
            group = next(g for g in ("level", "dynamics") if n.endswith(GROUPS[g]))
        else:
            group = next((g for g, starts in GROUPS.items() if g not in ("level", "dynamics") and n.startswith(starts)),
                         None)
            if group is None:
                raise ValueError(f"audio feature {n!r} belongs to no group of mmdf.stats.audio.GROUPS")
        out.setdefault(group, []).append(n)
    return out


def grey_to_power(grey: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """Linear power relative to the clip's peak, from grey levels: 255 -> 1, 0 -> 10^(-top_db/10)."""
    top_db = cfg.top_db if cfg.top_db is not None else NOMINAL_TOP_DB
    return 10.0 ** ((grey / 255.0 - 1.0) * top_db / 10.0)


def pool_bands(image: np.ndarray, n_bands: int) -> np.ndarray:
    """(n_bands, W) means of contiguous row groups of an (H, W) image (all rows when H <= n_bands)."""
    n = min(n_bands, image.shape[0])
    starts = np.linspace(0, image.shape[0], n + 1).round().astype(int)[:-1]
    counts = np.diff(np.append(starts, image.shape[0]))[:, None]
    return np.add.reduceat(image, starts, axis=0) / counts


def band_statistics(level: np.ndarray, n_bands: int) -> dict[str, float]:
    """Per pooled band: mean, std and quantiles over time, and of its first difference over time.

    ``level`` is the image scaled to 0-1. The difference statistics say how
    fast each band moves: converted speech is smoother or jumpier than speech.
    """
    bands = pool_bands(level, n_bands)
    qs = np.quantile(bands, QUANTILES, axis=1)
    diff = np.diff(bands, axis=1)
    cols = {"mean": bands.mean(1), "std": bands.std(1)}
    cols.update({f"q{round(q * 100):02d}": qs[i] for i, q in enumerate(QUANTILES)})
    has_diff = diff.shape[1] > 0
    cols["dabs"] = np.abs(diff).mean(1) if has_diff else np.full(len(bands), np.nan)
    cols["dstd"] = diff.std(1) if has_diff else np.full(len(bands), np.nan)
    return {f"band{b:02d}_{name}": float(v[b]) for name, v in cols.items() for b in range(len(bands))}


def fine_structure(level: np.ndarray, voiced: np.ndarray, n_bands: int) -> dict[str, float]:
    """Per pooled band: how far the level steps from each mel band to the next (``|row i+1 - row i|``).

    Mean and std over the voiced frames, and quantiles over all frames. The
    step is the spectrum's fine structure without its envelope: harmonics and
    noise that a vocoder renders too smooth or too sharp, while the speaker's
    timbre and the channel (the long-term spectrum) cancel out of it. On two
    real sets with unseen speakers and systems in val, a logistic regression
    on these alone transferred best of all groups (see docs/generalisation.md).
    """
    step = np.abs(np.diff(level, axis=0))
    rows = step.shape[0]
    if rows == 0:
        return {k: np.nan for k in _fine_names(n_bands)}
    on = step[:, voiced] if voiced.any() else step
    cols = {"mean": pool_bands(on, n_bands).mean(1), "std": _pool_rows(on.std(1), n_bands)}
    qs = np.quantile(step, FINE_QUANTILES, axis=1)
    cols.update({f"q{round(q * 100):02d}": _pool_rows(qs[i], n_bands) for i, q in enumerate(FINE_QUANTILES)})
    return {f"fine{b:02d}_{name}": float(v[b]) for name, v in cols.items() for b in range(len(v))}


def _pool_rows(values: np.ndarray, n_bands: int) -> np.ndarray:
    """Means of contiguous groups of a per-row vector, as :func:`pool_bands` groups image rows."""
    return pool_bands(values[:, None], n_bands)[:, 0]


def _fine_names(n_bands: int) -> list[str]:
    stats = ["mean", "std", *(f"q{round(q * 100):02d}" for q in FINE_QUANTILES)]
    return [f"fine{b:02d}_{s}" for s in stats for b in range(n_bands)]


def _voiced_grey(grey: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """:func:`_voiced` of the image's power; every frame of a constant image."""
    if grey.max() == grey.min():
        return np.ones(grey.shape[1], dtype=bool)
    return _voiced(grey_to_power(grey, cfg))


def envelope_correlation(grey: np.ndarray, n_bands: int) -> dict[str, float]:
    """Per band: correlation over time of the band's level with the clip's loudness (mean grey per frame).

    A recording's lowest bands hold room rumble and hum that ignore the
    speech; a vocoder makes them with the speech, so they rise and fall with
    it. NaN for a band (or a loudness) that does not change over the clip.
    """
    bands = pool_bands(grey, n_bands)
    corr = np.full(len(bands), np.nan)
    if grey.shape[1] > 1:
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.corrcoef(np.vstack([bands, grey.mean(0)]))[-1, :-1]
    return {f"envcorr{b:03d}": float(v) for b, v in enumerate(corr)}


def _shape_names() -> list[str]:
    shape = ["flatness_mean", "flatness_std", "rolloff85_hz_mean", "rolloff85_hz_std",
             "rolloff99_hz_mean", "hf4k_share", "hf7k_share", "centroid_hz_mean"]
    cut = [f"cutoff_hz_g{g}" for g in CUTOFF_FLOORS] + ["cutoff_edge_db"]
    return shape + cut


def spectral_shape(power: np.ndarray, freqs: np.ndarray) -> dict[str, float]:
    """Flatness, roll-off, centroid and high-band energy shares over the clip's voiced frames.

    Silent frames are left out: their flat noise floor would swamp the shape of the speech.
    """
    import librosa

    voiced = _voiced(power)
    spec = power[:, voiced]
    flat = librosa.feature.spectral_flatness(S=spec, power=1.0)[0]
    roll85 = librosa.feature.spectral_rolloff(S=spec, freq=freqs, roll_percent=0.85)[0]
    roll99 = librosa.feature.spectral_rolloff(S=spec, freq=freqs, roll_percent=0.99)[0]
    centroid = (freqs[:, None] * spec).sum(0) / spec.sum(0)
    total = spec.sum()
    return {
        "flatness_mean": float(flat.mean()), "flatness_std": float(flat.std()),
        "rolloff85_hz_mean": float(roll85.mean()), "rolloff85_hz_std": float(roll85.std()),
        "rolloff99_hz_mean": float(roll99.mean()),
        "hf4k_share": float(spec[freqs > 4000].sum() / total),
        "hf7k_share": float(spec[freqs > 7000].sum() / total),
        "centroid_hz_mean": float(centroid.mean()),
    }


def cutoff_features(grey: np.ndarray, freqs: np.ndarray) -> dict[str, float]:
    """The high-band cut-off: the highest frequency whose band has energy above a floor.

    A band "has energy" when its 90th percentile over time passes the floor
    (grey level), so a few loud frames do not count but sustained speech
    does; the crossing is interpolated between rows to get below the row
    spacing. ``cutoff_edge_db`` is how steeply the level falls over the
    top eighth of rows below the cut-off (a brick-wall filter falls fast).
    """
    profile = np.quantile(grey, 0.9, axis=1)
    out = {f"cutoff_hz_g{g}": _crossing(profile, freqs, g) for g in CUTOFF_FLOORS}
    top = _top_row(profile, CUTOFF_FLOORS[0])
    span = max(len(profile) // 8, 1)
    if top is None or top < span:
        out["cutoff_edge_db"] = np.nan
    else:
        out["cutoff_edge_db"] = float((profile[top - span] - profile[top]) / 255.0 * NOMINAL_TOP_DB)
    return out


def _top_row(profile: np.ndarray, floor: float) -> int | None:
    above = np.flatnonzero(profile > floor)
    return int(above[-1]) if above.size else None


def _crossing(profile: np.ndarray, freqs: np.ndarray, floor: float) -> float:
    """Frequency where ``profile`` last falls through ``floor`` (linear between rows); NaN if never above."""
    top = _top_row(profile, floor)
    if top is None:
        return np.nan
    if top == len(profile) - 1:
        return float(freqs[-1])
    hi, lo = profile[top], profile[top + 1]
    w = (hi - floor) / (hi - lo) if hi != lo else 0.0
    return float(freqs[top] + w * (freqs[top + 1] - freqs[top]))


def _voiced(power: np.ndarray) -> np.ndarray:
    """Boolean (W,) mask of frames within SILENCE_DB of the loudest frame."""
    energy = 10.0 * np.log10(power.mean(0))
    return energy >= energy.max() - SILENCE_DB


def silence_features(power: np.ndarray) -> dict[str, float]:
    """Share of silent frames, and the leading and trailing silence, as shares of the clip's frames."""
    voiced = _voiced(power)
    width = len(voiced)
    idx = np.flatnonzero(voiced)
    return {
        "silence_share": float(1.0 - voiced.mean()),
        "lead_silence": float(idx[0] / width),
        "trail_silence": float((width - 1 - idx[-1]) / width),
    }
