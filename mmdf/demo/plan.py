"""What each demo clip will be: names, labels, kinds, hard cases, identities.

The whole dataset is planned up front in one process from the seed, so the
label files and the manifest are byte-identical for a seed whatever the
number of workers, and a clip's pixels and samples depend only on its
:class:`ClipSpec` (see :mod:`mmdf.demo.render`).

A sync fake (``fake_sync``) keeps the real face and the real voice and only
puts them out of step, so neither modality alone tells it from a real clip: it
is there for a detector that looks at both together. It needs a talking face
and a voice that speaks, and a clip long enough to show a second's offset, so
no hard case pairs with it.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace

import numpy as np

from mmdf.demo.faces import N_IDENTITIES, identity_name

FPS = 25
SAMPLE_RATE = 22050
FRAME_SIZE = 256

KINDS = ("real", "fake_visual", "fake_audio", "fake_both", "fake_sync")
KIND_SHARE = {"real": 0.4, "fake_visual": 0.15, "fake_audio": 0.15, "fake_both": 0.15, "fake_sync": 0.15}
HARD_CASES = ("no_audio", "no_face", "short", "silent")
HARD_CASE_SHARE = 0.03
# A hard case only pairs with kinds whose fake modality it keeps: a clip
# without a voice cannot carry an audio fake, one without a face no visual fake,
# and a sync fake needs both and more than half a second to be out of step.
HARD_CASE_KINDS = {
    "no_audio": ("real", "fake_visual"),
    "silent": ("real", "fake_visual"),
    "no_face": ("real", "fake_audio"),
    "short": ("real", "fake_visual", "fake_audio", "fake_both"),
}
# How a sync fake is out of step: the mouth says another utterance of the
# speaker, or the voiced one shifted by SYNC_OFFSET_RANGE seconds (either sign).
SYNC_METHODS = ("other_utterance", "offset")
SYNC_OFFSET_RANGE = (0.3, 1.5)
SYNC_STREAM = 100  # clip-seed stream that draws a sync fake's method (render.py's ingredient streams are 0-7)
SPLIT_DIRS = {"train": "trainset", "val": "valset", "test": "testset"}


@dataclass(frozen=True)
class Speaker:
    """A voice: glottal pitch, vocal-tract length and timbre."""

    f0: float  # base pitch, Hz (90-250)
    formant_scale: float  # 1.0 = adult male tract; ~1.15-1.2 = shorter tract
    tilt: float  # one-pole low-pass coefficient of the glottal source (brightness)
    breathiness: float  # aspiration noise relative to the voiced source


@dataclass(frozen=True)
class ClipSpec:
    """Everything that determines one clip; rendering is a pure function of it."""

    split: str
    index: int
    video_name: str
    target: int
    kind: str
    hard_case: str  # "" or one of HARD_CASES
    identity: int
    swap_identity: int  # donor face of visual fakes; -1 otherwise
    speaker: Speaker
    fake_speaker: Speaker | None  # converted voice of audio fakes
    sync_method: str  # "" or one of SYNC_METHODS (sync fakes)
    sync_offset: float  # seconds the mouth leads the voice (> 0) or lags it (< 0) in "offset" sync fakes; 0 otherwise
    duration: float  # seconds
    n_frames: int
    clip_seed: int
    snr_db: float  # voice over background noise

    @property
    def has_face(self) -> bool:
        return self.hard_case != "no_face"

    @property
    def has_audio(self) -> bool:
        return self.hard_case != "no_audio"

    @property
    def fake_video(self) -> bool:
        return self.kind in ("fake_visual", "fake_both")

    @property
    def fake_audio(self) -> bool:
        return self.kind in ("fake_audio", "fake_both")

    @property
    def fake_sync(self) -> bool:
        """A real face and a real voice, out of step."""
        return self.kind == "fake_sync"

    def as_real(self) -> "ClipSpec":
        """The same clip before any manipulation (same scene, face, voice and noise)."""
        return replace(self, kind="real", target=0, sync_method="", sync_offset=0.0)

    def sync_fake_method(self) -> str:
        """``other_utterance``, ``offset_+0.73s`` (mouth leads) / ``offset_-0.73s`` (lags), or "" when in step."""
        if not self.fake_sync:
            return ""
        return f"offset_{self.sync_offset:+.2f}s" if self.sync_method == "offset" else self.sync_method

    def manifest_row(self) -> dict:
        """The manifest's record of how the clip was made."""
        speaker = {f"voice_{k}": round(v, 4) for k, v in asdict(self.speaker).items()}
        fake = self.fake_speaker
        return {
            "split": self.split,
            "video_name": self.video_name,
            "target": self.target,
            "kind": self.kind,
            "hard_case": self.hard_case,
            "identity": identity_name(self.identity),
            "swap_identity": identity_name(self.swap_identity) if self.swap_identity >= 0 else "",
            **speaker,
            "fake_voice_f0": round(fake.f0, 4) if fake else "",
            "fake_voice_formant_scale": round(fake.formant_scale, 4) if fake else "",
            "audio_fake_method": "pitch_timbre_convert+griffinlim_16k" if self.fake_audio else "",
            "visual_fake_method": "faceswap_blend_lowres" if self.fake_video else "",
            "sync_fake_method": self.sync_fake_method(),
            "duration": round(self.duration, 4),
            "n_frames": self.n_frames,
            "fps": FPS,
            "sample_rate": SAMPLE_RATE if self.has_audio else "",
            "snr_db": round(self.snr_db, 2),
            "clip_seed": self.clip_seed,
        }


def clip_name(seed: int, split: str, index: int) -> str:
    """A 32-hex-digit FFDV-style name, fixed by (seed, split, index)."""
    return hashlib.md5(f"mmdf-demo/{seed}/{split}/{index}".encode()).hexdigest() + ".mp4"


def speaker_for(identity: int, seed: int) -> Speaker:
    """Each identity keeps one voice within a dataset (as a real person would)."""
    rng = np.random.default_rng([seed, 7919, identity])
    high = rng.random() < 0.45  # higher-pitched, shorter vocal tract
    f0 = rng.uniform(165, 250) if high else rng.uniform(90, 150)
    return Speaker(
        f0=float(f0),
        formant_scale=float(rng.uniform(1.12, 1.22) if high else rng.uniform(0.94, 1.06)),
        tilt=float(rng.uniform(0.55, 0.85)),
        breathiness=float(rng.uniform(0.02, 0.12)),
    )


def _converted(speaker: Speaker, rng: np.random.Generator) -> Speaker:
    """A voice-conversion target: pitch moved 2-5 semitones, tract rescaled."""
    shift = rng.choice([-1, 1]) * rng.uniform(2, 5)
    return replace(
        speaker,
        f0=float(np.clip(speaker.f0 * 2 ** (shift / 12), 80, 300)),
        formant_scale=float(speaker.formant_scale * rng.uniform(0.9, 1.1)),
        tilt=float(np.clip(speaker.tilt + rng.uniform(-0.15, 0.15), 0.4, 0.9)),
    )


def _sync(clip_seed: int) -> tuple[str, float]:
    """A sync fake's method and offset, from the clip's own stream (about half each)."""
    rng = np.random.default_rng([clip_seed, SYNC_STREAM])
    if rng.random() < 0.5:
        return "other_utterance", 0.0
    return "offset", float(rng.choice([-1, 1]) * rng.uniform(*SYNC_OFFSET_RANGE))


def _kinds(n: int, rng: np.random.Generator) -> list[str]:
    """Kinds in the target shares (largest remainder: each within one clip of its share), shuffled."""
    quota = {k: n * KIND_SHARE[k] for k in KINDS}
    counts = {k: int(q) for k, q in quota.items()}
    by_remainder = sorted(KINDS, key=lambda k: -(quota[k] - counts[k]))  # stable: real wins ties
    for k in by_remainder[: n - sum(counts.values())]:
        counts[k] += 1
    kinds = [k for k in KINDS for _ in range(counts[k])]
    rng.shuffle(kinds)
    return kinds


def _hard_cases(kinds: list[str], rng: np.random.Generator) -> list[str]:
    """Give each hard case ~3% of the clips (at least one from 8 clips on), alternating labels."""
    n = len(kinds)
    per_case = int(round(n * HARD_CASE_SHARE)) or (1 if n >= 8 else 0)
    hard = [""] * n
    order = rng.permutation(n)
    for case_no, case in enumerate(HARD_CASES):
        for j in range(per_case):
            want_real = (j + case_no) % 2 == 0
            free = [i for i in order if not hard[i] and kinds[i] in HARD_CASE_KINDS[case]]
            preferred = [i for i in free if (kinds[i] == "real") == want_real]
            pick = (preferred or free or [None])[0]
            if pick is not None:
                hard[pick] = case
    return hard


def plan_dataset(n_train: int, n_val: int, n_test: int, seed: int = 0) -> list[ClipSpec]:
    """Specs of every clip, train then val then test, fixed by the arguments alone."""
    specs: list[ClipSpec] = []
    for split_no, (split, n) in enumerate((("train", n_train), ("val", n_val), ("test", n_test))):
        rng = np.random.default_rng([seed, 101, split_no])
        kinds = _kinds(n, rng)
        hard = _hard_cases(kinds, rng)
        for i in range(n):
            identity = int(rng.integers(N_IDENTITIES))
            swap = int((identity + rng.integers(1, N_IDENTITIES)) % N_IDENTITIES)
            duration = float(rng.uniform(0.3, 0.5) if hard[i] == "short" else rng.uniform(2.0, 4.0))
            n_frames = max(1, int(round(duration * FPS)))
            kind = kinds[i]
            speaker = speaker_for(identity, seed)
            fake_speaker = _converted(speaker, rng)
            clip_seed = int(rng.integers(2**31))
            sync_method, sync_offset = _sync(clip_seed) if kind == "fake_sync" else ("", 0.0)
            specs.append(
                ClipSpec(
                    split=split,
                    index=i,
                    video_name=clip_name(seed, split, i),
                    target=int(kind != "real"),
                    kind=kind,
                    hard_case=hard[i],
                    identity=identity,
                    swap_identity=swap if kind in ("fake_visual", "fake_both") else -1,
                    speaker=speaker,
                    fake_speaker=fake_speaker if kind in ("fake_audio", "fake_both") else None,
                    sync_method=sync_method,
                    sync_offset=sync_offset,
                    duration=n_frames / FPS,
                    n_frames=n_frames,
                    clip_seed=clip_seed,
                    snr_db=float(rng.uniform(18, 32)),
                )
            )
    return specs
