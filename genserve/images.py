"""Image encoding shared by the image-producing models: PNG, JPEG, thumbnails, grids,
strips, GIFs and the denoising frames of a generation.

Pure Pillow and numpy. Encoders use fixed settings, so equal pixels give equal bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image


def _image(pixels: np.ndarray) -> Image.Image:
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise ValueError(f"expected uint8 HxW or HxWx3 pixels, got {pixels.dtype} {pixels.shape}")
    return Image.fromarray(pixels)


def png(pixels: np.ndarray) -> bytes:
    """One image as PNG bytes."""
    buf = io.BytesIO()
    _image(pixels).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def jpeg(pixels: np.ndarray, quality: int = 95) -> bytes:
    """One image as JPEG bytes (fixed settings: equal pixels give equal bytes)."""
    buf = io.BytesIO()
    _image(pixels).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def encode(pixels: np.ndarray, fmt: str) -> tuple[bytes, str]:
    """One image as ``fmt`` ("png" or "jpeg"): the bytes and their media type."""
    if fmt == "jpeg":
        return jpeg(pixels), "image/jpeg"
    if fmt == "png":
        return png(pixels), "image/png"
    raise ValueError(f"no image format {fmt!r}")


def thumbnail(pixels: np.ndarray, side: int) -> np.ndarray:
    """The image shrunk to fit ``side`` x ``side``, keeping its aspect (never enlarged)."""
    img = _image(pixels).copy()
    img.thumbnail((side, side))
    return np.asarray(img)


def tile(images: Sequence[np.ndarray], columns: int, pad: int = 2, fill: int = 0) -> np.ndarray:
    """Equal-sized images laid out in a grid, ``columns`` wide, row by row."""
    if not images:
        raise ValueError("no images to tile")
    h, w = images[0].shape[:2]
    rows = math.ceil(len(images) / columns)
    shape = (rows * h + (rows + 1) * pad, columns * w + (columns + 1) * pad, *images[0].shape[2:])
    canvas = np.full(shape, fill, dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        canvas[y : y + h, x : x + w] = img
    return canvas


def grid(images: Sequence[np.ndarray], pad: int = 2) -> np.ndarray:
    """A near-square grid of the images."""
    return tile(images, math.ceil(math.sqrt(len(images))), pad)


def strip(images: Sequence[np.ndarray], pad: int = 2) -> np.ndarray:
    """The images side by side in one row."""
    return tile(images, len(images), pad)


def gif(frames: Sequence[np.ndarray], frame_ms: int = 80, loop: bool = True) -> bytes:
    """An animated GIF of the frames."""
    first, *rest = (_image(f) for f in frames)
    buf = io.BytesIO()
    first.save(
        buf,
        format="GIF",
        save_all=True,
        append_images=rest,
        duration=frame_ms,
        loop=0 if loop else 1,
        optimize=False,
    )
    return buf.getvalue()


def frames(history: Sequence[np.ndarray], fmt: str, frame_ms: int = 120) -> bytes:
    """A generation's frames, noise to picture: an animated GIF ("gif") or a PNG strip
    ("strip")."""
    if fmt == "gif":
        return gif(history, frame_ms=frame_ms)
    if fmt == "strip":
        return png(strip(history))
    raise ValueError(f"no frames format {fmt!r}")


def decode_rgb(data: bytes) -> np.ndarray:
    """An encoded image (PNG, JPEG) as an H x W x 3 uint8 array."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))
