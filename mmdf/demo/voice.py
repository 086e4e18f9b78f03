"""Speech-like voices and the vocoder that fakes them.

A voice is a glottal sawtooth with a natural pitch contour (speaker base
pitch, slow drift, phrase declination, syllable accents, jitter), shaped by
vowel formants that change every syllable (100-280 ms), gated by a syllable
envelope with pauses, plus fricative noise bursts; background noise is added
at a realistic SNR. Everything is vectorised (formants applied in the STFT domain).

The audio fake converts pitch and timbre and then passes the track through
what TTS / voice-cloning systems do: a 16 kHz, 80-band mel spectrogram
inverted by Griffin-Lim. Nothing survives above 8 kHz and the harmonics are
smeared: the cue lives in the audio only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from mmdf.demo.plan import FPS, SAMPLE_RATE, Speaker

# (F1, F2, F3) Hz of an adult male tract; a, e, i, o, u, schwa, ae
_VOWELS = np.array(
    [[730, 1090, 2440], [530, 1840, 2480], [270, 2290, 3010], [570, 840, 2410], [300, 870, 2240], [500, 1500, 2500], [660, 1720, 2410]],
    dtype=np.float32,
)
_BANDWIDTHS = np.array([90, 110, 170, 250], dtype=np.float32)
_N_FFT, _HOP = 512, 256
_CONTROL_RATE = 200  # Hz; envelopes and contours are built at this rate, then interpolated


@dataclass(frozen=True)
class Utterance:
    """What is said, independent of who says it: timing and vowel sequence."""

    voiced: np.ndarray  # (n_ctrl,) voiced amplitude envelope at the control rate
    fricative: np.ndarray  # (n_ctrl,) fricative amplitude envelope
    fric_band: np.ndarray  # (n_ctrl, 2) band (lo, hi) Hz of the fricative at each control step
    vowels: np.ndarray  # (n_ctrl, 3) F1-F3 of an adult male tract
    accent: np.ndarray  # (n_ctrl,) pitch offset in semitones
    n_samples: int


def plan_utterance(duration: float, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> Utterance:
    n_ctrl = int(np.ceil(duration * _CONTROL_RATE)) + 1
    voiced = np.zeros(n_ctrl, np.float32)
    fric = np.zeros(n_ctrl, np.float32)
    band = np.tile(np.array([4500, 9500], np.float32), (n_ctrl, 1))
    vowels = np.tile(_VOWELS[5], (n_ctrl, 1))
    accent = np.zeros(n_ctrl, np.float32)
    t = rng.uniform(0.03, 0.25) if duration > 1 else rng.uniform(0.0, 0.05)
    phrase_start = t
    while t < duration - 0.08:
        if rng.random() < 0.35:  # fricative onset: s / sh / f
            flen = rng.uniform(0.05, 0.11)
            lo, hi = [(4200, 10500), (2200, 6500), (1200, 9000)][rng.integers(3)]
            a, b = int(t * _CONTROL_RATE), int(min(t + flen, duration) * _CONTROL_RATE)
            fric[a:b] = np.maximum(fric[a:b], np.hanning(b - a + 2)[1:-1] * rng.uniform(0.25, 0.6))
            band[a:b] = (lo, hi)
            t += flen * 0.8
        length = min(rng.uniform(0.10, 0.28), duration - t)
        a, b = int(t * _CONTROL_RATE), int((t + length) * _CONTROL_RATE)
        if b - a >= 3:
            n = b - a
            attack = max(1, int(n * 0.25))
            env = np.ones(n, np.float32)
            env[:attack] = np.linspace(0, 1, attack) ** 0.7
            env[-attack:] = np.minimum(env[-attack:], np.linspace(1, 0, attack))
            voiced[a:b] = np.maximum(voiced[a:b], env * rng.uniform(0.55, 1.0))
            vowels[a:b] = _VOWELS[rng.integers(len(_VOWELS))]
            accent[a:b] = rng.uniform(-1.0, 2.5)
        t += length
        # phrase declination: pitch falls ~3 semitones over a breath group
        if rng.random() < 0.2:
            s = int(phrase_start * _CONTROL_RATE)
            accent[s : int(t * _CONTROL_RATE)] += np.linspace(1.5, -1.5, int(t * _CONTROL_RATE) - s)
            t += rng.uniform(0.15, 0.45)  # pause
            phrase_start = t
        else:
            t += rng.uniform(0.015, 0.06)
    # smooth vowel transitions (coarticulation) and accents
    k = np.hanning(9)[1:-1]
    k /= k.sum()
    vowels = np.stack([np.convolve(vowels[:, i], k, mode="same") for i in range(3)], 1)
    vowels[:4], vowels[-4:] = vowels[4], vowels[-5]
    accent = np.convolve(accent, np.hanning(15) / np.hanning(15).sum(), mode="same")
    return Utterance(voiced, fric, band, vowels.astype(np.float32), accent.astype(np.float32), int(round(duration * sr)))


def _ctrl_to_samples(x: np.ndarray, n: int) -> np.ndarray:
    return np.interp(np.arange(n) * _CONTROL_RATE / SAMPLE_RATE, np.arange(len(x)), x).astype(np.float32)


def speak(utt: Utterance, speaker: Speaker, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """(n_samples,) float32 dry voice, peak ~0.5."""
    import librosa

    n = utt.n_samples
    tt = np.arange(n) / sr
    drift = 0.8 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * tt + rng.uniform(0, 6.3))
    semitones = _ctrl_to_samples(utt.accent, n) + drift
    grid = np.arange(int(tt[-1] / 0.01) + 2) * 0.01
    jitter = np.interp(tt, grid, rng.normal(0, 0.004, len(grid)))
    f0 = speaker.f0 * 2 ** (semitones / 12) * (1 + jitter)
    phase = np.cumsum(f0 / sr)
    saw = (2 * (phase % 1.0) - 1).astype(np.float32)
    # glottal spectral tilt: one-pole low-pass, then a touch of aspiration noise
    from scipy.signal import lfilter

    source = lfilter([1 - speaker.tilt], [1, -speaker.tilt], saw).astype(np.float32)
    source += speaker.breathiness * rng.standard_normal(n).astype(np.float32) * (0.5 + 0.5 * (phase % 1.0 < 0.4))
    voiced_env = _ctrl_to_samples(utt.voiced, n)
    fric_env = _ctrl_to_samples(utt.fricative, n)
    noise = rng.standard_normal(n).astype(np.float32)

    V = librosa.stft(source * voiced_env, n_fft=_N_FFT, hop_length=_HOP)
    N = librosa.stft(noise * fric_env, n_fft=_N_FFT, hop_length=_HOP)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=_N_FFT)[:, None]
    frame_pos = np.arange(V.shape[1]) * _HOP * _CONTROL_RATE / sr
    ctrl = np.arange(len(utt.voiced))
    formants = np.stack([np.interp(frame_pos, ctrl, utt.vowels[:, i]) for i in range(3)], 0)
    formants = np.concatenate([formants, np.full((1, V.shape[1]), 3400.0)], 0) * speaker.formant_scale
    gains = np.array([1.0, 0.6, 0.3, 0.15], np.float32)[:, None, None]
    bw = (_BANDWIDTHS * (0.9 + 0.2 * speaker.formant_scale))[:, None, None]
    envelope = (gains / (1 + ((freqs[None] - formants[:, None, :]) / (bw / 2)) ** 2)).sum(0) + 0.004
    lo = np.interp(frame_pos, ctrl, utt.fric_band[:, 0])[None]
    hi = np.interp(frame_pos, ctrl, utt.fric_band[:, 1])[None]
    fric_shape = 1 / (1 + np.exp(-(freqs - lo) / 300)) / (1 + np.exp((freqs - hi) / 900))
    y = librosa.istft(V * envelope + 0.5 * N * fric_shape, hop_length=_HOP, length=n)
    return (0.5 * y / (np.abs(y).max() + 1e-9)).astype(np.float32)


def background_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) unit-RMS room noise: pink and white broadband, sometimes mains hum."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spec *= rng.uniform(0.3, 1.0) / np.sqrt(np.maximum(f, 20) / 20) + rng.uniform(0.08, 0.2)
    x = np.fft.irfft(spec, n)
    if rng.random() < 0.3:
        x += 2 * np.std(x) * np.sin(2 * np.pi * rng.choice([50, 60]) * np.arange(n) / SAMPLE_RATE)
    return (x / (np.std(x) + 1e-12)).astype(np.float32)


def mix(voice: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Voice plus noise at ``snr_db`` (voice RMS over its active part)."""
    active = np.abs(voice) > 0.02 * np.abs(voice).max()
    rms = np.sqrt(np.mean(voice[active] ** 2)) if active.any() else 0.05
    return (voice + noise * rms * 10 ** (-snr_db / 20)).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _mel_16k() -> tuple[np.ndarray, np.ndarray]:
    """The vocoder's 80-band mel filter bank (80, 513) and its pseudo-inverse."""
    import librosa

    basis = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=80, fmax=8000)
    return basis, np.linalg.pinv(basis)


def vocode(audio: np.ndarray, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Resynthesise like a neural TTS/VC back end: 16 kHz, 80-band mel, Griffin-Lim.

    The mel is inverted with the pseudo-inverse of the filter bank (NNLS is
    ~10x slower for no visible gain); 8-16 Griffin-Lim iterations.
    """
    import librosa

    y16 = librosa.resample(audio, orig_sr=sr, target_sr=16000, res_type="soxr_hq")
    mel_basis, inverse = _mel_16k()
    power = np.abs(librosa.stft(y16, n_fft=1024, hop_length=256)) ** 2
    stft_mag = np.sqrt(np.maximum(inverse @ (mel_basis @ power), 0))
    y = librosa.griffinlim(stft_mag, n_iter=int(rng.integers(8, 17)), hop_length=256, n_fft=1024, length=len(y16), random_state=int(rng.integers(2**31)))
    out = librosa.resample(y, orig_sr=16000, target_sr=sr, res_type="soxr_hq")[: len(audio)]
    out = np.pad(out, (0, len(audio) - len(out)))
    return (out * (np.abs(audio).max() / (np.abs(out).max() + 1e-9))).astype(np.float32)


def mouth_openings(utt: Utterance, n_frames: int, offset_s: float = 0.0) -> np.ndarray:
    """(n_frames,) loudness envelope of the voice per video frame, in [0, 1].

    ``offset_s`` shifts the lookup: frame time t shows the envelope at
    t + ``offset_s`` (> 0: the mouth leads the voice, < 0: it lags), and a
    mouth whose shifted time falls outside the utterance is closed. A sync
    fake's mouth talks out of step with a voice that is itself untouched.
    """
    env = np.maximum(utt.voiced, 0.6 * utt.fricative)
    t = ((np.arange(n_frames) + 0.5) / FPS + offset_s) * _CONTROL_RATE
    # average over each frame's 40 ms window
    k = int(_CONTROL_RATE / FPS)
    smooth = np.convolve(env, np.ones(k) / k, mode="same")
    openings = np.clip(np.interp(t, np.arange(len(env)), smooth), 0, 1).astype(np.float32)
    openings[(t < 0) | (t > len(env) - 1)] = 0  # before or after the utterance: nothing said
    return openings
