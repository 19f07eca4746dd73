"""scikit-learn's handwritten digits, upscaled, and an independent digit classifier.

Build-time and test-time only (imports scikit-learn). The digits ship inside the
scikit-learn package, so nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

SOURCE_SIZE = 8


def digit_images(size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as float32 images in [0, 1] of shape (N, size, size), and labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)
    if size != SOURCE_SIZE:
        images = np.stack([_resize(img, size) for img in images])
    return np.clip(images, 0.0, 1.0), data.target.astype(np.int64)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


def features(images: np.ndarray) -> np.ndarray:
    """Box-downsample (N, H, W) images in [0, 1] to the 8x8 grid the classifier reads."""
    n, h, w = images.shape
    f = h // SOURCE_SIZE
    grid = images.reshape(n, SOURCE_SIZE, f, SOURCE_SIZE, w // SOURCE_SIZE).mean(axis=(2, 4))
    return grid.reshape(n, -1)


@dataclass
class DigitClassifier:
    """An SVC trained on the real digits, seen through the same upscale/downsample as samples."""

    size: int = 32
    seed: int = 0
    held_out_accuracy: float = 0.0

    def fit(self) -> DigitClassifier:
        from sklearn.model_selection import train_test_split
        from sklearn.svm import SVC

        images, labels = digit_images(self.size)
        x = features(images)
        x_tr, x_te, y_tr, y_te = train_test_split(
            x, labels, test_size=0.25, random_state=self.seed, stratify=labels
        )
        self._svc = SVC(C=10.0, gamma="scale").fit(x_tr, y_tr)
        self.held_out_accuracy = float((self._svc.predict(x_te) == y_te).mean())
        return self

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Labels for (N, H, W) images: uint8 in 0..255 or float in [0, 1]."""
        if images.dtype == np.uint8:
            images = images.astype(np.float32) / 255.0
        return np.asarray(self._svc.predict(features(images)))
