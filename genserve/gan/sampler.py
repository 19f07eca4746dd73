"""GAN sampling in ONNX Runtime: latents from seeds, truncation, interpolation.

Reproducibility: image ``i`` of a request with seed ``s`` draws its latent (and, when
no digit is asked for, its digit) from ``numpy.random.default_rng([s, i])`` alone,
so it does not depend on ``n``, on batching or on other requests. Interpolation
between seeds ``a`` and ``b`` starts and ends at image 0 of seeds ``a`` and ``b``.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genserve.artifacts import load_manifest
from genserve.config import RuntimeSettings
from genserve.errors import InvalidInput
from genserve.limits import MAX_FRAMES, MAX_SAMPLES, MAX_SEED, MIN_FRAMES
from genserve.runtime import OnnxSession
from genserve.serving import ServedModel

MODEL_FILE = "generator.onnx"
TRUNCATION_BOUND = 2.0  # latents are drawn from a normal truncated to [-2, 2], then scaled


@dataclass(frozen=True)
class Rows:
    """Generator inputs for a set of images, one row per image."""

    z: np.ndarray  # (N, z_dim) float32
    class_weights: np.ndarray  # (N, classes) float32
    digits: tuple[int | None, ...]  # the digit of each row (None where classes are blended)

    def feeds(self) -> dict[str, np.ndarray]:
        return {"z": self.z, "class_weights": self.class_weights}

    def split(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """One (z, class_weights) pair per image, for the batcher."""
        return list(zip(self.z, self.class_weights, strict=True))


def check_range(field: str, value: float, lo: float, hi: float, *, lo_open: bool = False) -> None:
    """InvalidInput naming ``field`` unless lo <= value <= hi (lo < value if ``lo_open``)."""
    ok = (lo < value if lo_open else lo <= value) and value <= hi
    if not ok:
        left = "(" if lo_open else "["
        raise InvalidInput(f"{field} must be in {left}{lo}, {hi}], got {value}", field=field)


def truncated_normal(rng: np.random.Generator, size: int, bound: float) -> np.ndarray:
    """Standard normal samples, redrawing any outside [-bound, bound]."""
    x = rng.standard_normal(size)
    while (mask := np.abs(x) > bound).any():
        x[mask] = rng.standard_normal(int(mask.sum()))
    return x


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation of two latents at fractions ``t`` (keeps Gaussian norms)."""
    cos = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if omega < 1e-6:
        return np.outer(1 - t, a) + np.outer(t, b)
    s = np.sin(omega)
    return np.outer(np.sin((1 - t) * omega) / s, a) + np.outer(np.sin(t * omega) / s, b)


class GanSampler(ServedModel[Hashable]):
    """A class-conditional generator: seeds and digits in, uint8 images out."""

    def __init__(self, folder: Path, settings: RuntimeSettings, *, verify: bool = True) -> None:
        self.manifest = load_manifest(folder, kind="gan", verify=verify)
        cfg = self.manifest.config
        self.z_dim = int(cfg["z_dim"])
        self.num_classes = int(cfg["num_classes"])
        self.image_size = int(cfg["image_size"])
        self.session = OnnxSession(
            self.manifest.path(MODEL_FILE),
            settings,
            expected_inputs=self.manifest.inputs,
            expected_outputs=self.manifest.outputs,
        )

    @property
    def provider(self) -> str:
        """The execution provider the generator runs on."""
        return self.session.provider

    def describe(self) -> dict[str, Any]:
        """The manifest summary, the generator's tensors and the execution provider."""
        m = self.manifest
        tensors = {
            "inputs": [t.to_dict() for t in m.inputs],
            "outputs": [t.to_dict() for t in m.outputs],
        }
        return {**super().describe(), **tensors}

    # -- inputs ---------------------------------------------------------------------------

    def _check_digit(self, field: str, digit: int | None) -> None:
        if digit is not None:
            check_range(field, digit, 0, self.num_classes - 1)

    def _latent(self, seed: int, index: int, truncation: float) -> tuple[np.ndarray, int]:
        rng = np.random.default_rng([seed, index])
        z = truncated_normal(rng, self.z_dim, TRUNCATION_BOUND) * truncation
        return z, int(rng.integers(self.num_classes))

    def sample_rows(self, n: int, seed: int, digit: int | None, truncation: float) -> Rows:
        """Inputs for ``n`` images; ``digit`` None draws each image's digit from its seed."""
        check_range("n", n, 1, MAX_SAMPLES)
        check_range("seed", seed, 0, MAX_SEED)
        check_range("truncation", truncation, 0.0, 1.0, lo_open=True)
        self._check_digit("digit", digit)
        z = np.empty((n, self.z_dim), np.float32)
        digits = []
        for i in range(n):
            z[i], drawn = self._latent(seed, i, truncation)
            digits.append(drawn if digit is None else digit)
        onehot = np.eye(self.num_classes, dtype=np.float32)[digits]
        return Rows(z, onehot, tuple(digits))

    def interpolation_rows(
        self,
        seed_a: int,
        seed_b: int,
        frames: int,
        truncation: float,
        digit_a: int | None = None,
        digit_b: int | None = None,
    ) -> Rows:
        """Inputs for ``frames`` images from seed_a's image 0 to seed_b's image 0.

        The latent moves along a great circle; the class weights move linearly from
        digit_a to digit_b (each defaulting to the digit its seed draws).
        """
        check_range("seed_a", seed_a, 0, MAX_SEED)
        check_range("seed_b", seed_b, 0, MAX_SEED)
        check_range("frames", frames, MIN_FRAMES, MAX_FRAMES)
        check_range("truncation", truncation, 0.0, 1.0, lo_open=True)
        self._check_digit("digit_a", digit_a)
        self._check_digit("digit_b", digit_b)
        za, da = self._latent(seed_a, 0, truncation)
        zb, db = self._latent(seed_b, 0, truncation)
        da = da if digit_a is None else digit_a
        db = db if digit_b is None else digit_b
        t = np.linspace(0.0, 1.0, frames)
        eye = np.eye(self.num_classes, dtype=np.float64)
        weights = np.outer(1 - t, eye[da]) + np.outer(t, eye[db])
        digits = tuple(da if w == 0 else db if w == 1 else (da if da == db else None) for w in t)
        return Rows(slerp(za, zb, t).astype(np.float32), weights.astype(np.float32), digits)

    # -- inference ------------------------------------------------------------------------

    def generate(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Run the generator on stacked rows; returns float images in [-1, 1], (N, H, W)."""
        return self.session.run(feeds)["image"][:, 0]

    def generate_rows(self, rows: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """``generate`` for (z, class_weights) pairs, as the batcher hands them over."""
        z, y = zip(*rows, strict=True)
        return self.generate({"z": np.stack(z), "class_weights": np.stack(y)})

    def run_batch(
        self, rows: list[tuple[np.ndarray, np.ndarray]], key: Hashable
    ) -> list[np.ndarray]:
        """``generate_rows`` as the batcher calls it: every row needs the same call, so
        ``key`` is unused. One float image (H, W) per row."""
        return list(self.generate_rows(rows))


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Generator output in [-1, 1] to uint8 pixels (round half to even, clipped)."""
    return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)
