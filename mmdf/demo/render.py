"""Render one demo clip from its :class:`~mmdf.demo.plan.ClipSpec`.

Each ingredient draws from its own random stream keyed by the clip seed, so a
fake differs from its real twin (``spec.as_real()``) only in the manipulated
modality: an audio fake has exactly the real clip's frames, a visual fake
exactly its samples.

A sync fake has exactly its twin's samples and its twin's frames but for the
mouth: lip-sync deepfakes and badly muxed dubs leave each stream genuine and
break only the agreement between lips and voice, so the one cue must be that
agreement, not an artefact of either stream. Its mouth follows either another
utterance of the same speaker (a lip-synced sentence that was never said) or
the voiced one shifted 0.3-1.5 s ahead or behind (a sound track out of
step).
"""

from __future__ import annotations

import functools
from typing import Iterator

import cv2
import numpy as np

from mmdf.demo import voice
from mmdf.demo.faces import Person, Swap, make_person, skimage_data
from mmdf.demo.plan import FPS, FRAME_SIZE, SYNC_STREAM, ClipSpec

# random stream per ingredient (second key of the generator's seed)
_SCENE, _SWAP, _UTTERANCE, _VOICE, _ROOM, _FAKE_VOICE, _VOCODER, _MOUTH_UTTERANCE = range(8)
assert SYNC_STREAM >= 8  # the plan's own stream stays apart from the ingredients
_TEXTURES = ("brick.png", "grass.png", "gravel.png", "coffee.png", "hubble_deep_field.jpg", "rocket.jpg", "color.png")


def _rng(spec: ClipSpec, stream: int) -> np.random.Generator:
    return np.random.default_rng([spec.clip_seed, stream])


@functools.lru_cache(maxsize=None)
def _texture(name: str) -> np.ndarray:
    img = cv2.imread(str(skimage_data() / name), cv2.IMREAD_COLOR)
    return img[:, :, ::-1].astype(np.float32)


def background(rng: np.random.Generator, size: int = FRAME_SIZE) -> np.ndarray:
    """(size, size, 3) float32 0-255: a gradient, a defocused photo texture, smooth noise or blurred shapes."""
    style = rng.integers(4)
    if style == 0:  # gradient between two colours
        c0, c1 = rng.uniform(20, 235, (2, 3))
        angle = rng.uniform(0, np.pi)
        y, x = np.mgrid[:size, :size] / size
        t = np.clip(0.5 + (x - 0.5) * np.cos(angle) + (y - 0.5) * np.sin(angle), 0, 1)[..., None]
        img = c0 * (1 - t) + c1 * t
    elif style == 1:  # defocused photo texture, tinted
        tex = _texture(_TEXTURES[rng.integers(len(_TEXTURES))])
        h, w = tex.shape[:2]
        crop = int(rng.uniform(0.4, 1.0) * min(h, w))
        y0, x0 = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
        img = cv2.resize(tex[y0 : y0 + crop, x0 : x0 + crop], (size, size), interpolation=cv2.INTER_AREA)
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(2, 6)) * rng.uniform(0.7, 1.2, 3)
    elif style == 2:  # smooth coloured noise
        low = rng.uniform(0, 255, (8, 8, 3)).astype(np.float32)
        img = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
        img = img + cv2.GaussianBlur(rng.normal(0, 20, (size, size, 3)).astype(np.float32), (0, 0), 1.5)
    else:  # blurred shapes (a room: furniture, windows)
        img = np.full((size, size, 3), rng.uniform(40, 220, 3), np.float32)
        for _ in range(rng.integers(3, 8)):
            colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
            p = rng.integers(-40, size + 40, 4)
            if rng.random() < 0.5:
                cv2.rectangle(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), colour, -1)
            else:
                cv2.circle(img, (int(p[0]), int(p[1])), int(rng.integers(15, 80)), colour, -1)
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(3, 8))
    return np.clip(img, 0, 255).astype(np.float32)


def _motion(rng: np.random.Generator, n_frames: int) -> np.ndarray:
    """(n_frames, 4): dx, dy (px), angle (deg), scale; smooth sums of slow sinusoids."""
    t = np.arange(n_frames) / FPS
    amp = np.array([rng.uniform(4, 14), rng.uniform(2, 7), rng.uniform(1.5, 5), rng.uniform(0.02, 0.06)])
    out = np.zeros((n_frames, 4))
    for _ in range(2):
        freq = rng.uniform(0.15, 0.7, 4)
        phase = rng.uniform(0, 2 * np.pi, 4)
        out += 0.5 * amp * np.sin(2 * np.pi * freq * t[:, None] + phase)
    out[:, 3] += 1.0 + rng.uniform(-0.05, 0.05)
    return out


def mouth_track(spec: ClipSpec) -> np.ndarray:
    """(n_frames,) how far the mouth is open in each frame, in [0, 1]."""
    if spec.hard_case == "silent":
        return np.zeros(spec.n_frames, np.float32)  # nobody speaks: the mouth stays shut
    # (a no_audio clip shows someone talking whose track was lost)
    other = spec.fake_sync and spec.sync_method == "other_utterance"
    mouthed = voice.plan_utterance(spec.duration, _rng(spec, _MOUTH_UTTERANCE if other else _UTTERANCE))
    return voice.mouth_openings(mouthed, spec.n_frames, offset_s=spec.sync_offset if spec.fake_sync else 0.0)


def render_frames(spec: ClipSpec) -> Iterator[np.ndarray]:
    """Yield the clip's ``n_frames`` frames, (256, 256, 3) uint8 RGB, one at a time."""
    scene = _rng(spec, _SCENE)
    bg = background(scene)
    size = FRAME_SIZE
    person: Person | None = None
    if spec.has_face:
        person = make_person(spec.identity, int(scene.integers(104, 150)), size, scene)
    motion = _motion(scene, spec.n_frames)
    light = 1 + 0.03 * np.sin(2 * np.pi * scene.uniform(0.05, 0.3) * np.arange(spec.n_frames) / FPS + scene.uniform(0, 6.3))
    openings = mouth_track(spec)
    swap = swap_rng = None
    if person is not None and spec.fake_video:
        swap_rng = _rng(spec, _SWAP)
        swap = Swap(spec.swap_identity, spec.identity, person.face_box[2], swap_rng)
    for i in range(spec.n_frames):
        frame = bg
        if person is not None:
            top, left, F = person.face_box
            centre = (left + F / 2, top + F / 2)
            dx, dy, angle, scale = motion[i]
            M = cv2.getRotationMatrix2D(centre, angle, scale)
            M[:, 2] += (dx, dy)
            warped = cv2.warpAffine(person.frame(float(openings[i]), swap, swap_rng), M, (size, size), flags=cv2.INTER_LINEAR)
            alpha = warped[..., 3].copy()
            frame = cv2.blendLinear(cv2.cvtColor(warped, cv2.COLOR_RGBA2RGB), bg, alpha, 1.0 - alpha)
        yield cv2.convertScaleAbs(frame, alpha=float(light[i]))  # rounds and saturates to uint8


def render_audio(spec: ClipSpec) -> np.ndarray | None:
    """(n_samples,) float32 mono at 22.05 kHz; zeros for ``silent``; None without an audio track."""
    if not spec.has_audio:
        return None
    utt = voice.plan_utterance(spec.duration, _rng(spec, _UTTERANCE))
    if spec.hard_case == "silent":
        return np.zeros(utt.n_samples, np.float32)
    dry = voice.speak(utt, spec.speaker, _rng(spec, _VOICE))
    room = voice.background_noise(utt.n_samples, _rng(spec, _ROOM))
    if not spec.fake_audio:
        return voice.mix(dry, room, spec.snr_db)
    assert spec.fake_speaker is not None
    converted = voice.speak(utt, spec.fake_speaker, _rng(spec, _FAKE_VOICE))
    return voice.vocode(voice.mix(converted, room, spec.snr_db), _rng(spec, _VOCODER))
