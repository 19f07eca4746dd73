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


def near_duplicate_ratios(
    samples: dict[int, np.ndarray], *, percentile: float = 2.0, n: int = 100, seed: int = 0
) -> dict[int, float]:
    """Per digit: the near-duplicate rate of generated samples over that of real digits.

    ``samples[d]`` holds images of digit ``d`` (N, H, W) in [0, 1] or uint8, N a multiple
    of ``n``. Images are compared on the classifier's 8x8 grid (real digits go through the
    same upscale and box-downsample). A pair is a near duplicate when its distance is
    under the ``percentile``-th percentile of all pairwise distances among the real digits
    of the class; the rate is the share of such pairs among ``n`` images, averaged over
    the groups of ``n`` generated images, against the mean of the same number of draws of
    ``n`` real digits. 1.0 is as varied as the data; a collapsed class is far above.
    """
    any_images = next(iter(samples.values()))
    real_images, labels = digit_images(any_images.shape[-1])
    rng = np.random.default_rng(seed)
    ratios: dict[int, float] = {}
    for digit, images in samples.items():
        if images.dtype == np.uint8:
            images = images.astype(np.float32) / 255.0
        real = features(real_images[labels == digit])
        threshold = np.percentile(_pairwise(real), percentile)
        groups = len(images) // n
        fake_rate = np.mean(
            [
                (_pairwise(features(images[g * n : (g + 1) * n])) < threshold).mean()
                for g in range(groups)
            ]
        )
        real_rate = np.mean(
            [
                (_pairwise(real[rng.choice(len(real), n, replace=False)]) < threshold).mean()
                for _ in range(groups)
            ]
        )
        ratios[digit] = float(fake_rate / max(real_rate, 1e-9))
    return ratios


def _pairwise(x: np.ndarray) -> np.ndarray:
    """Euclidean distances of every pair of rows (i < j)."""
    sq = (x * x).sum(1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None] - 2.0 * x @ x.T, 0.0))
    return d[np.triu_indices(len(x), 1)]
