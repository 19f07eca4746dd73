"""The three built models through the ServedModel interface the services use."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from genserve.artifacts import Manifest
from genserve.imagegen.pipeline import Cancelled, ImageParams, ImageRow
from genserve.serving import ServedModel
from genserve.translation.translator import Options, Translation

COMMON = {"name", "kind", "config", "provider", "source"}
DESCRIBE_KEYS = {
    "gan": COMMON | {"inputs", "outputs"},
    "translation": COMMON,
    "imagegen": COMMON,
}


@pytest.fixture(params=list(DESCRIBE_KEYS))
def served(request) -> ServedModel:
    return request.getfixturevalue(f"{request.param}_model")


def test_the_protocol_members_and_what_describe_returns(served) -> None:
    assert isinstance(served, ServedModel)
    assert isinstance(served.manifest, Manifest)
    assert isinstance(served.provider, str) and served.provider.endswith("ExecutionProvider")
    described = served.describe()
    m = served.manifest
    assert set(described) == DESCRIBE_KEYS[m.kind]
    assert (described["name"], described["kind"], described["source"]) == (
        m.name,
        m.kind,
        m.source,
    )
    assert described["provider"] == served.provider
    if m.kind == "gan":
        assert described["config"] == m.config
        assert described["inputs"] == [t.to_dict() for t in m.inputs]
        assert described["outputs"] == [t.to_dict() for t in m.outputs]
    else:
        assert described["config"] == served.config


def test_gan_run_batch_is_one_image_per_row(gan_model) -> None:
    rows = gan_model.sample_rows(3, seed=4, digit=None, truncation=1.0)
    out = gan_model.run_batch(rows.split(), None)
    assert len(out) == 3
    np.testing.assert_array_equal(np.stack(out), gan_model.generate(rows.feeds()))


def test_translation_run_batch_is_translate_ids(translation_model) -> None:
    options = Options()
    rows = translation_model.check(["I am a student.", "I am a cat."], options)
    out = translation_model.run_batch(rows, options)
    assert all(isinstance(t, Translation) for t in out)
    assert [t.text for t in out] == [t.text for t in translation_model.translate_ids(rows, options)]
    assert out[0].text == "Je suis étudiant."


def test_imagegen_rows_frames_and_step_times(imagegen_model) -> None:
    params = ImageParams(steps=3)
    rows = [
        ImageRow("a red circle", "", 1, 4.0, frames=False),
        ImageRow("a blue square", "a red circle", 2, 2.0, frames=True),
    ]
    seconds: list[float] = []
    imagegen_model.step_observer = seconds.append
    try:
        out = imagegen_model.run_batch(rows, params)
    finally:
        imagegen_model.step_observer = None
    assert len(seconds) == params.steps and all(s > 0 for s in seconds)
    (pixels_a, frames_a), (pixels_b, frames_b) = out
    assert frames_a == [] and len(frames_b) == params.steps
    assert pixels_a.shape == frames_b[0].shape == (32, 32, 3) and pixels_b.dtype == np.uint8
    want = imagegen_model.generate(
        ["a red circle", "a blue square"], ["", "a red circle"], [1, 2], params, guidance=[4, 2]
    )
    np.testing.assert_array_equal(np.stack([pixels_a, pixels_b]), want)
    # Keeping frames does not change the images.
    plain = imagegen_model.run_batch([replace(r, frames=False) for r in rows], params)
    np.testing.assert_array_equal(np.stack([p for p, _ in plain]), want)
    assert all(frames == [] for _, frames in plain)


def test_imagegen_on_step_sees_every_step_and_can_cancel(imagegen_model) -> None:
    rows = [ImageRow("a red circle", "", 1, 4.0)]
    seen: list[int] = []

    def on_step(i: int, denoised: np.ndarray) -> bool:
        seen.append(i)
        assert denoised.shape[0] == 1
        return i < 1

    with pytest.raises(Cancelled):
        imagegen_model.generate_rows(rows, ImageParams(steps=4), on_step=on_step)
    assert seen == [0, 1]
