"""The demo image dataset: coloured shapes rendered by the project, and a checker that
reads shape, colour and background back from an image.

Captions look like "a small red circle at the top left on a blue background". A shape is
never the colour of its background. About a third of the caption combinations are held
out of training, chosen so that every pair of values still occurs in training.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (40, 70, 220),
    "yellow": (240, 220, 30),
    "purple": (140, 40, 180),
    "orange": (250, 140, 20),
}
BACKGROUNDS = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "blue": (40, 70, 220),
    "yellow": (240, 220, 30),
}
SIZES = {"small": 20, "large": 30}  # radius at 128 px
POSITIONS = {
    "center": (64, 64),
    "top left": (38, 38),
    "top right": (90, 38),
    "bottom left": (38, 90),
    "bottom right": (90, 90),
}
RENDER, SIZE = 128, 32


@dataclass(frozen=True)
class Scene:
    shape: str
    colour: str
    size: str
    position: str
    background: str

    @property
    def caption(self) -> str:
        where = "in the center" if self.position == "center" else f"at the {self.position}"
        return f"a {self.size} {self.colour} {self.shape} {where} on a {self.background} background"


def all_scenes() -> list[Scene]:
    return [
        Scene(*combo)
        for combo in itertools.product(SHAPES, COLOURS, SIZES, POSITIONS, BACKGROUNDS)
        if combo[1] != combo[4]
    ]


def split_scenes(seed: int = 0, heldout: int = 210) -> tuple[list[Scene], list[Scene]]:
    """(train, held-out) scenes; every pair of attribute values still occurs in training."""
    rng = random.Random(seed)
    scenes = all_scenes()
    order = scenes[:]
    rng.shuffle(order)
    held: list[Scene] = []
    train = set(scenes)
    for s in order:
        if len(held) == heldout:
            break
        rest = train - {s}
        values = list(_pairs(s))
        if all(any(p in set(_pairs(t)) for t in rest) for p in values):
            train = rest
            held.append(s)
    return sorted(train, key=scenes.index), held


def _pairs(s: Scene) -> itertools.combinations[tuple[tuple[int, str], tuple[int, str]]]:
    fields = list(enumerate((s.shape, s.colour, s.size, s.position, s.background)))
    return itertools.combinations(fields, 2)


def render(scene: Scene, jitter: tuple[int, int] = (0, 0)) -> np.ndarray:
    """A 32x32 RGB uint8 image of ``scene``, drawn at 128 px and downscaled."""
    img = Image.new("RGB", (RENDER, RENDER), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(img)
    cx, cy = POSITIONS[scene.position]
    cx, cy = cx + 4 * jitter[0], cy + 4 * jitter[1]
    r = SIZES[scene.size]
    fill = COLOURS[scene.colour]
    if scene.shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif scene.shape == "square":
        s = int(r * 0.9)
        draw.rectangle((cx - s, cy - s, cx + s, cy + s), fill=fill)
    else:
        draw.polygon(
            [(cx, cy - r), (cx - r, cy + int(r * 0.8)), (cx + r, cy + int(r * 0.8))], fill=fill
        )
    return np.asarray(img.resize((SIZE, SIZE), Image.Resampling.BOX))


def dataset(scenes: list[Scene], per_scene: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Images (N, 32, 32, 3) uint8 and captions, ``per_scene`` jittered renders each."""
    rng = random.Random(seed)
    images, captions = [], []
    for s in scenes:
        for _ in range(per_scene):
            images.append(render(s, (rng.randint(-1, 1), rng.randint(-1, 1))))
            captions.append(s.caption)
    return np.stack(images), captions


def _nearest(rgb: np.ndarray, palette: dict[str, tuple[int, int, int]]) -> str:
    names = list(palette)
    d = [float(np.sum((rgb - np.array(palette[n], np.float32)) ** 2)) for n in names]
    return names[int(np.argmin(d))]


def read(image: np.ndarray) -> tuple[str, str, str]:
    """(shape, colour, background) of a 32x32 RGB image, as a person would name them."""
    from scipy import ndimage

    px = image.astype(np.float32)
    border = np.concatenate([px[0], px[-1], px[:, 0], px[:, -1]])
    background = _nearest(np.median(border, axis=0), BACKGROUNDS)
    bg = np.array(BACKGROUNDS[background], np.float32)
    mask = np.sqrt(((px - bg) ** 2).sum(-1)) > 60
    labels, n = ndimage.label(mask)
    if n == 0:
        return "none", "none", background
    sizes = ndimage.sum(mask, labels, range(1, n + 1))
    blob = labels == (1 + int(np.argmax(sizes)))
    inner = ndimage.binary_erosion(blob) if blob.sum() > 12 else blob
    colour = _nearest(np.median(px[inner if inner.any() else blob], axis=0), COLOURS)
    ys, xs = np.nonzero(blob)
    h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    fill = blob.sum() / float(h * w)
    rows = blob[ys.min() : ys.max() + 1].sum(axis=1)
    top, bottom = rows[: max(1, h // 4)].mean(), rows[-max(1, h // 4) :].mean()
    if top < 0.55 * bottom or fill < 0.62:
        shape = "triangle"
    elif fill > 0.86:
        shape = "square"
    else:
        shape = "circle"
    return shape, colour, background


def _object_mask(px: np.ndarray, colour: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Pixels nearer the object's colour than the background's (along the line between)."""
    axis = colour - bg
    t = ((px - bg) @ axis) / float(axis @ axis)
    return t > 0.5


def shape_quality(image: np.ndarray, scene: Scene, shift: int = 3) -> tuple[float, float]:
    """(overlap, ring) of a 32x32 RGB image drawn for ``scene``.

    overlap: intersection over union of the image's object with the ideal render of the
    scene, at the best whole-pixel offset within ``shift`` pixels (so a shape drawn a
    pixel off its place still counts as the right shape). Both masks are taken the same
    way: pixels nearer the scene's colour than its background's. A clean render scores 1.

    ring: the mean distance, in 0..255 units, of the pixels on the object's edge (one
    pixel in and one pixel out) from the line between background and object colour.
    Antialiasing puts edge pixels on that line (a clean render scores about 0); a halo
    lighter or darker than both colours lies off it.
    """
    from scipy import ndimage

    px = image.astype(np.float32)
    colour = np.array(COLOURS[scene.colour], np.float32)
    bg = np.array(BACKGROUNDS[scene.background], np.float32)
    mask = _object_mask(px, colour, bg)
    ideal = _object_mask(render(scene).astype(np.float32), colour, bg)
    best = 0.0
    for dy in range(-shift, shift + 1):
        for dx in range(-shift, shift + 1):
            moved = np.roll(ideal, (dy, dx), axis=(0, 1))
            union = np.logical_or(mask, moved).sum()
            best = max(best, float(np.logical_and(mask, moved).sum() / max(union, 1)))
    edge = ndimage.binary_dilation(mask) & ~ndimage.binary_erosion(mask)
    if not edge.any():
        return best, 0.0
    axis = colour - bg
    t = np.clip(((px[edge] - bg) @ axis) / float(axis @ axis), 0.0, 1.0)
    off_line = np.linalg.norm(px[edge] - (bg + t[:, None] * axis), axis=1)
    return best, float(off_line.mean())
