"""Faces of the demo clips: real identities, a talking mouth and a face swap.

Identities are the 100 face crops of scikit-image's LFW subset (25x25
grayscale, aligned: eyes at ~38% and the mouth at ~78% of the height),
colourised with a per-identity skin tone, plus the colour face of
``astronaut.png``. Upscaled to ~100-150 px they get a fixed per-identity skin
texture, standing in for the fine detail a camera records; a face swap pastes a
lower-resolution donor face, which has lost that texture, with a visible seam,
a colour mismatch and a flickering blend: the artefacts of real face swaps.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

N_LFW = 100  # lfw_subset.npy holds 100 faces followed by 100 non-faces
ASTRONAUT = N_LFW
N_IDENTITIES = N_LFW + 1
MOUTH_Y = 0.79  # mouth centre, fraction of the face height from the top

# Skin tones (RGB, 0-1) from light to dark; hair colours.
_SKIN = np.array([[1.00, 0.86, 0.74], [0.96, 0.78, 0.64], [0.86, 0.66, 0.52], [0.72, 0.52, 0.38], [0.55, 0.38, 0.27]])
_HAIR = np.array([[0.08, 0.06, 0.05], [0.22, 0.14, 0.08], [0.45, 0.32, 0.18], [0.75, 0.62, 0.40], [0.55, 0.55, 0.55]])


def identity_name(identity: int) -> str:
    return "astronaut" if identity == ASTRONAUT else f"lfw_{identity:03d}"


def skimage_data() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


@functools.lru_cache(maxsize=None)
def _lfw_faces() -> np.ndarray:
    """(100, 25, 25) float in [0, 1]."""
    return np.load(skimage_data() / "lfw_subset.npy")[:N_LFW]


@functools.lru_cache(maxsize=None)
def _astronaut_face() -> np.ndarray:
    """(95, 95, 3) float RGB in [0, 1], cropped to the LFW alignment."""
    img = cv2.imread(str(skimage_data() / "astronaut.png"))[:, :, ::-1]
    return img[66:161, 177:272].astype(np.float32) / 255.0


@dataclass(frozen=True)
class Look:
    """How an identity looks beyond its face crop."""

    skin: np.ndarray  # (3,) RGB 0-1
    hair: np.ndarray  # (3,)
    shirt: np.ndarray  # (3,)


@functools.lru_cache(maxsize=None)
def look(identity: int) -> Look:
    rng = np.random.default_rng([17, identity])
    if identity == ASTRONAUT:
        skin = np.array([0.93, 0.72, 0.60])
        hair = np.array([0.30, 0.20, 0.12])
    else:
        pos = rng.uniform(0, len(_SKIN) - 1)
        lo = int(pos)
        skin = _SKIN[lo] + (pos - lo) * (_SKIN[min(lo + 1, len(_SKIN) - 1)] - _SKIN[lo])
        hair = _HAIR[rng.integers(len(_HAIR))]
    shirt = rng.uniform(0.1, 0.9, 3)
    return Look(skin=skin.astype(np.float32), hair=hair.astype(np.float32), shirt=shirt.astype(np.float32))


def face_image(identity: int, size: int, textured: bool = True) -> np.ndarray:
    """(size, size, 3) float32 RGB in [0, 255]: the identity's face, upscaled.

    ``textured`` adds the identity's fixed fine skin texture (sigma ~4 grey
    levels, ~2-3 px grain, coarse enough to survive H.264), which a
    low-resolution swapped face lacks.
    """
    if identity == ASTRONAUT:
        rgb = cv2.resize(_astronaut_face(), (size, size), interpolation=cv2.INTER_CUBIC)
    else:
        grey = _lfw_faces()[identity].astype(np.float32)
        grey = cv2.resize(grey, (size, size), interpolation=cv2.INTER_CUBIC)
        # Grey levels become shades of the skin tone; highlights drift to white.
        skin = look(identity).skin
        g = np.clip(grey, 0, 1)[..., None]
        rgb = g * skin * 1.15 + (g**3) * (1 - skin) * 0.35
    rgb = rgb * 255.0
    if textured:
        rng = np.random.default_rng([29, identity, size])
        grain = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), 1.0)
        rgb = rgb + (grain * 14.0)[..., None]
    return np.clip(rgb, 0, 255).astype(np.float32)


def soft_ellipse(h: int, w: int, cy: float, cx: float, ay: float, ax: float, feather: float) -> np.ndarray:
    """(h, w) float32 mask: 1 inside the ellipse, falling to 0 over ``feather`` px."""
    y, x = np.ogrid[:h, :w]
    r = np.sqrt(((y - cy) / ay) ** 2 + ((x - cx) / ax) ** 2)
    edge = feather / max(min(ax, ay), 1e-6)
    return np.clip((1.0 - r) / edge + 0.5, 0.0, 1.0).astype(np.float32)


def draw_mouth(face: np.ndarray, opening: float, skin: np.ndarray, feather: float = 1.2) -> np.ndarray:
    """Open and darken the mouth of a (F, F, 3) face in place; ``opening`` in [0, 1]."""
    size = face.shape[0]
    cy, cx = MOUTH_Y * size, 0.5 * size
    ax, ay = 0.15 * size, (0.012 + 0.065 * opening) * size
    pad = int(feather) + 3
    y0, y1 = int(cy - ay - pad), int(cy + ay + pad + 1)
    x0, x1 = int(cx - ax - pad), int(cx + ax + pad + 1)
    roi = face[y0:y1, x0:x1]
    m = soft_ellipse(roi.shape[0], roi.shape[1], cy - y0, cx - x0, ay, ax, feather)[..., None]
    inside = np.array([70.0, 22.0, 24.0], np.float32) * (0.6 + 0.4 * skin)
    roi[:] = roi * (1 - m) + inside * m
    return face


class Person:
    """A head-and-shoulders RGBA sprite (H, W, 4) float32 at the neutral pose.

    ``frame`` edits only the face square of one reusable buffer, so a frame
    costs a face-sized copy, not a canvas-sized one.
    """

    def __init__(self, rgba: np.ndarray, face_box: tuple[int, int, int], identity: int):
        self.rgba = rgba  # RGB 0-255, alpha 0-1
        self.face_box = face_box  # top, left, size of the face square
        self.identity = identity
        self._work = rgba.copy()

    def frame(self, opening: float, swap: "Swap | None" = None, rng: np.random.Generator | None = None) -> np.ndarray:
        """The sprite with the mouth at ``opening``, face-swapped when ``swap`` (valid until the next call)."""
        top, left, size = self.face_box
        box = (slice(top, top + size), slice(left, left + size), slice(0, 3))
        self._work[box] = self.rgba[box]
        face = self._work[box]
        draw_mouth(face, opening, look(self.identity).skin)
        if swap is not None:
            swap.apply(face, opening, rng)
        return self._work


def make_person(identity: int, face_size: int, canvas: int, rng: np.random.Generator) -> Person:
    """Place hair, neck, shoulders and the face of ``identity`` on a canvas."""
    lk = look(identity)
    cx = canvas / 2 + rng.uniform(-6, 6)
    cy = canvas * 0.44 + rng.uniform(-6, 6)
    F = face_size
    rgb = np.zeros((canvas, canvas, 3), np.float32)
    alpha = np.zeros((canvas, canvas), np.float32)

    def put(mask: np.ndarray, colour: np.ndarray) -> None:
        nonlocal rgb, alpha
        m = mask[..., None]
        rgb = rgb * (1 - m) + colour * m
        alpha = np.maximum(alpha, mask)

    shirt = lk.shirt * 255
    put(soft_ellipse(canvas, canvas, cy + 1.45 * F, cx, 0.65 * F, 1.05 * F, 2.0), shirt)
    neck = np.zeros((canvas, canvas), np.float32)
    neck[int(cy + 0.2 * F) : int(cy + 1.0 * F), int(cx - 0.2 * F) : int(cx + 0.2 * F)] = 1
    put(cv2.GaussianBlur(neck, (0, 0), 1.5), lk.skin * 200)
    put(soft_ellipse(canvas, canvas, cy - 0.1 * F, cx, 0.64 * F, 0.58 * F, 2.5), lk.hair * 255)
    top, left = int(round(cy - F / 2)), int(round(cx - F / 2))
    face_mask = np.zeros((canvas, canvas), np.float32)
    face_mask[top : top + F, left : left + F] = soft_ellipse(F, F, F * 0.52, F / 2, F * 0.52, F * 0.47, 3.0)
    face = np.zeros_like(rgb)
    face[top : top + F, left : left + F] = face_image(identity, F)
    m = face_mask[..., None]
    rgb = rgb * (1 - m) + face * m
    alpha = np.maximum(alpha, face_mask)
    return Person(np.dstack([rgb, alpha]).astype(np.float32), face_box=(top, left, F), identity=identity)


class Swap:
    """A donor face pasted over the inner face, as a face-swap model would.

    The donor is rendered at 1/7-1/5 resolution (losing the skin texture),
    colour-shifted, and blended through an inner ellipse with a narrow
    feather and a lighter or darker halo (a seam), whose position, size and
    opacity flicker frame to frame.
    """

    def __init__(self, donor: int, target: int, face_size: int, rng: np.random.Generator):
        self.donor = donor
        self.size = face_size
        self.face = face_image(donor, face_size, textured=False)
        self.low = max(12, int(face_size / rng.uniform(5.0, 7.0)))
        # the swapper colour-corrects most, not all, of the way to the target's skin
        inner = slice(face_size // 4, 3 * face_size // 4)
        target_mean = face_image(target, face_size, textured=False)[inner, inner].mean((0, 1))
        correction = rng.uniform(0.1, 0.5) * (target_mean - self.face[inner, inner].mean((0, 1)))
        self.gain = (1 + rng.uniform(-0.1, 0.1, 3)).astype(np.float32)
        self.offset = (correction + rng.uniform(-15, 15, 3)).astype(np.float32)
        self.feather = float(rng.uniform(3.0, 5.0))
        self.halo = float(rng.choice([-1, 1]) * rng.uniform(25, 45))  # blending seam, lighter or darker

        # a few jittered blend masks; each frame draws one (the blend flickers)
        jit = rng.uniform(-1, 1, (6, 3))
        F = face_size
        self.masks = [
            soft_ellipse(F, F, F * (0.56 + 0.01 * a), F * (0.5 + 0.01 * b), F * 0.40 * (1 + 0.02 * c), F * 0.35 * (1 + 0.02 * c), self.feather)[..., None]
            for a, b, c in jit
        ]
        low = cv2.resize(self.face, (self.low, self.low), interpolation=cv2.INTER_AREA)
        self.degraded = cv2.resize(low, (F, F), interpolation=cv2.INTER_LINEAR) * self.gain + self.offset

    def apply(self, face: np.ndarray, opening: float, rng: np.random.Generator | None) -> None:
        """Paste the donor into ``face`` (F, F, 3) in place; ``rng`` drives the flicker."""
        donor = self.degraded.copy()
        # the donor's mouth is as soft as the rest of its low-resolution face
        draw_mouth(donor, opening, look(self.donor).skin, feather=0.5 * self.size / self.low)
        k, opacity = (int(rng.integers(len(self.masks))), float(rng.uniform(0.82, 1.0))) if rng is not None else (0, 1.0)
        m = self.masks[k] * opacity
        halo = self.halo * (4 * self.masks[k] * (1 - self.masks[k]))  # peaks on the seam
        face[:] = np.clip(face * (1 - m) + donor * m + halo, 0, 255)
