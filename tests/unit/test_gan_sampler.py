from __future__ import annotations

import numpy as np
import pytest

from genserve.errors import InvalidInput
from genserve.gan.sampler import MAX_SEED, slerp, truncated_normal


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"digit": 10}, "digit"),
        ({"digit": -1}, "digit"),
        ({"n": 0}, "n"),
        ({"n": 1000}, "n"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**64}, "seed"),
        ({"truncation": 0.0}, "truncation"),
        ({"truncation": 2.0}, "truncation"),
    ],
)
def test_sample_parameters_are_bounded(gan_model, kwargs: dict, field: str) -> None:
    args = {"n": 1, "seed": 0, "digit": None, "truncation": 1.0, **kwargs}
    with pytest.raises(InvalidInput) as info:
        gan_model.sample_rows(**args)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"frames": 1}, "frames"),
        ({"frames": 65}, "frames"),
        ({"seed_b": MAX_SEED + 1}, "seed_b"),
        ({"digit_a": 11}, "digit_a"),
    ],
)
def test_interpolation_parameters_are_bounded(gan_model, kwargs: dict, field: str) -> None:
    args = {"seed_a": 1, "seed_b": 2, "frames": 4, "truncation": 1.0, **kwargs}
    with pytest.raises(InvalidInput) as info:
        gan_model.interpolation_rows(**args)
    assert info.value.field == field


def test_image_i_depends_only_on_seed_and_i(gan_model) -> None:
    big = gan_model.sample_rows(8, seed=MAX_SEED, digit=None, truncation=0.7)
    small = gan_model.sample_rows(3, seed=MAX_SEED, digit=None, truncation=0.7)
    np.testing.assert_array_equal(big.z[:3], small.z)
    assert big.digits[:3] == small.digits
    other = gan_model.sample_rows(3, seed=MAX_SEED - 1, digit=None, truncation=0.7)
    assert not np.array_equal(other.z, small.z)


def test_digit_fixes_the_class_not_the_latent(gan_model) -> None:
    free = gan_model.sample_rows(4, seed=7, digit=None, truncation=1.0)
    three = gan_model.sample_rows(4, seed=7, digit=3, truncation=1.0)
    np.testing.assert_array_equal(free.z, three.z)
    assert three.digits == (3, 3, 3, 3)
    assert (three.class_weights.argmax(1) == 3).all() and three.class_weights.sum() == 4


def test_truncation_scales_a_bounded_latent(gan_model) -> None:
    full = gan_model.sample_rows(16, seed=3, digit=0, truncation=1.0).z
    half = gan_model.sample_rows(16, seed=3, digit=0, truncation=0.5).z
    np.testing.assert_allclose(half, full * 0.5, rtol=1e-6)
    assert np.abs(full).max() <= 2.0


def test_interpolation_starts_and_ends_at_the_seeds_images(gan_model) -> None:
    rows = gan_model.interpolation_rows(11, 22, frames=5, truncation=1.0, digit_a=1, digit_b=7)
    a = gan_model.sample_rows(1, seed=11, digit=1, truncation=1.0)
    b = gan_model.sample_rows(1, seed=22, digit=7, truncation=1.0)
    np.testing.assert_allclose(rows.z[0], a.z[0], atol=1e-6)
    np.testing.assert_allclose(rows.z[-1], b.z[0], atol=1e-6)
    assert rows.digits[0] == 1 and rows.digits[-1] == 7 and rows.digits[2] is None
    np.testing.assert_allclose(rows.class_weights.sum(1), 1.0, rtol=1e-6)


def test_truncated_normal_and_slerp() -> None:
    x = truncated_normal(np.random.default_rng(0), 10_000, 2.0)
    assert np.abs(x).max() <= 2.0 and abs(x.mean()) < 0.05
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    mid = slerp(a, b, np.array([0.0, 0.5, 1.0]))
    np.testing.assert_allclose(np.linalg.norm(mid, axis=1), 1.0)
    np.testing.assert_allclose(mid[0], a, atol=1e-12)
