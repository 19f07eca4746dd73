"""genserve's numpy schedulers against diffusers' on the same inputs and noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, EulerAncestralDiscreteScheduler

from genserve.imagegen import schedulers
from genserve.imagegen.train import DDIM_EXTRA, SCHEDULER

CONFIG = {**SCHEDULER, **DDIM_EXTRA}  # the demo model's training schedule


def _reference(name: str, config: dict):
    if name == "ddim":
        return DDIMScheduler(**config)
    cfg = {k: v for k, v in config.items() if k not in ("clip_sample", "set_alpha_to_one")}
    return EulerAncestralDiscreteScheduler(**cfg)


@pytest.mark.parametrize("name", schedulers.NAMES)
@pytest.mark.parametrize("steps", [1, 4, 25])
@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_matches_diffusers(name: str, steps: int, prediction: str) -> None:
    config = {**CONFIG, "prediction_type": prediction}
    ref = _reference(name, config)
    ref.set_timesteps(steps)
    ours = schedulers.make(name, config, steps)
    np.testing.assert_allclose(ours.timesteps, ref.timesteps.numpy(), rtol=1e-6)
    assert ours.init_sigma == pytest.approx(float(ref.init_noise_sigma), rel=1e-5)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 8, 8)).astype(np.float32) * ours.init_sigma
    xt = torch.from_numpy(x.copy())
    g = torch.Generator().manual_seed(7)
    g_ours = torch.Generator().manual_seed(7)

    def noise(shape: tuple[int, ...]) -> np.ndarray:
        return torch.randn(shape, generator=g_ours).numpy()

    for i, t in enumerate(ref.timesteps):
        eps = rng.standard_normal(x.shape).astype(np.float32)
        scaled = ours.scale(x, i)
        np.testing.assert_allclose(
            scaled, ref.scale_model_input(xt, t).numpy(), rtol=1e-4, atol=1e-4
        )
        out = ref.step(torch.from_numpy(eps), t, xt, generator=g)
        step = ours.step(eps, i, x, noise)
        np.testing.assert_allclose(step.latents, out.prev_sample.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(
            step.denoised, out.pred_original_sample.numpy(), rtol=1e-4, atol=1e-4
        )
        x, xt = step.latents, out.prev_sample


def test_unknown_scheduler() -> None:
    with pytest.raises(ValueError, match="unknown scheduler"):
        schedulers.make("plms", CONFIG, 10)
