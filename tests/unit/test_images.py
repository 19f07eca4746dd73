from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from genserve import images


def _imgs(n: int) -> list[np.ndarray]:
    return [np.full((4, 5), 10 * i, np.uint8) for i in range(n)]


def test_png_round_trips_and_is_deterministic() -> None:
    px = np.arange(64, dtype=np.uint8).reshape(8, 8)
    data = images.png(px)
    assert data == images.png(px.copy())
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), px)


def test_grid_and_strip_layout() -> None:
    g = images.grid(_imgs(5), pad=1)  # 3 columns, 2 rows
    assert g.shape == (2 * 4 + 3, 3 * 5 + 4)
    assert g[1, 1] == 0 and g[1, 1 + 5 + 1] == 10 and g[1 + 4 + 1, 1] == 30
    assert images.strip(_imgs(4), pad=0).shape == (4, 20)


def test_gif_has_every_frame() -> None:
    gif = Image.open(io.BytesIO(images.gif(_imgs(6), frame_ms=50)))
    assert gif.n_frames == 6 and gif.info["duration"] == 50


def test_rejects_non_uint8() -> None:
    with pytest.raises(ValueError, match="uint8"):
        images.png(np.zeros((2, 2), np.float32))
