"""Diffusion schedulers in numpy, following diffusers' DDIM and Euler-ancestral.

Each scheduler is built from a diffusers ``scheduler_config.json`` (the training noise
schedule), told the number of inference steps, and then walks from noise to a clean
latent: ``scale(x, i)`` prepares the UNet input at step ``i``, ``step(eps, i, x, noise)``
returns the next latent and the current estimate of the clean latent (``x0``, what the
previews show). Ancestral samplers take fresh noise at every step from the caller, so
the caller decides where randomness comes from (a seed per image). Both epsilon and
v-prediction models (Stable Diffusion 2.x) are supported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

NAMES = ("ddim", "euler_a")
NoiseFn = Callable[[tuple[int, ...]], np.ndarray]


def alphas_cumprod(config: dict[str, Any]) -> np.ndarray:
    """The training schedule's cumulative products of (1 - beta), float32 like torch's."""
    n = int(config["num_train_timesteps"])
    start, end = float(config["beta_start"]), float(config["beta_end"])
    kind = config.get("beta_schedule", "linear")
    if kind == "scaled_linear":
        betas = np.linspace(start**0.5, end**0.5, n, dtype=np.float32) ** 2
    elif kind == "linear":
        betas = np.linspace(start, end, n, dtype=np.float32)
    else:
        raise ValueError(f"unsupported beta_schedule {kind!r}")
    return np.cumprod((1.0 - betas).astype(np.float32), dtype=np.float32)


@dataclass
class Step:
    latents: np.ndarray
    denoised: np.ndarray  # the current estimate of the clean latent


def _prediction(config: dict[str, Any]) -> str:
    kind = str(config.get("prediction_type", "epsilon"))
    if kind not in ("epsilon", "v_prediction"):
        raise ValueError(f"unsupported prediction_type {kind!r}")
    return kind


class DDIM:
    """Deterministic DDIM (eta = 0), "leading" (or the config's) timestep spacing."""

    needs_noise = False

    def __init__(self, config: dict[str, Any], steps: int) -> None:
        self.acp = alphas_cumprod(config)
        n = int(config["num_train_timesteps"])
        spacing = config.get("timestep_spacing", "leading")
        if spacing == "leading":
            ratio = n // steps
            self.timesteps = (np.arange(steps) * ratio).round()[::-1].astype(np.int64)
            self.timesteps += int(config.get("steps_offset", 0))
        elif spacing == "trailing":
            self.timesteps = (np.round(np.arange(n, 0, -n / steps)) - 1).astype(np.int64)
        else:  # linspace
            self.timesteps = np.linspace(0, n - 1, steps).round()[::-1].astype(np.int64)
        self.ratio = n // steps
        self.v = _prediction(config) == "v_prediction"
        self.final = np.float32(1.0) if config.get("set_alpha_to_one", True) else self.acp[0]
        self.init_sigma = 1.0

    def scale(self, x: np.ndarray, i: int) -> np.ndarray:
        return x

    def step(self, eps: np.ndarray, i: int, x: np.ndarray, noise: NoiseFn | None = None) -> Step:
        t = int(self.timesteps[i])
        prev = t - self.ratio
        a_t = self.acp[t]
        a_prev = self.acp[prev] if prev >= 0 else self.final
        if self.v:  # the model predicted v; recover x0 and epsilon from it
            x0 = np.sqrt(a_t) * x - np.sqrt(1 - a_t) * eps
            eps = np.sqrt(a_t) * eps + np.sqrt(1 - a_t) * x
        else:
            x0 = (x - np.sqrt(1 - a_t) * eps) / np.sqrt(a_t)
        out = np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev) * eps
        return Step(out.astype(np.float32), x0.astype(np.float32))


class EulerAncestral:
    """Euler-ancestral sampling on the Karras sigma scale, "linspace" spacing."""

    needs_noise = True

    def __init__(self, config: dict[str, Any], steps: int) -> None:
        acp = alphas_cumprod(config)
        n = int(config["num_train_timesteps"])
        sigmas = ((1 - acp) / acp) ** 0.5
        spacing = config.get("timestep_spacing", "linspace")
        if spacing == "linspace":
            timesteps = np.linspace(0, n - 1, steps, dtype=np.float32)[::-1].copy()
        elif spacing == "leading":
            ratio = n // steps
            timesteps = (np.arange(steps) * ratio).round()[::-1].astype(np.float32)
            timesteps += int(config.get("steps_offset", 0))
        else:  # trailing
            timesteps = (np.arange(n, 0, -n / steps).round() - 1).astype(np.float32)
        s = np.interp(timesteps, np.arange(len(sigmas)), sigmas)
        self.sigmas = np.concatenate([s, [0.0]]).astype(np.float32)
        self.timesteps = timesteps
        self.v = _prediction(config) == "v_prediction"
        top = float(self.sigmas.max())
        self.init_sigma = top if spacing in ("linspace", "trailing") else (top**2 + 1) ** 0.5

    def scale(self, x: np.ndarray, i: int) -> np.ndarray:
        return (x / np.sqrt(self.sigmas[i] ** 2 + 1)).astype(np.float32)

    def step(self, eps: np.ndarray, i: int, x: np.ndarray, noise: NoiseFn | None = None) -> Step:
        if noise is None:
            raise ValueError("Euler-ancestral needs a noise source")
        sigma, sigma_to = self.sigmas[i], self.sigmas[i + 1]
        if self.v:
            x0 = eps * (-sigma / np.sqrt(sigma**2 + 1)) + x / (sigma**2 + 1)
        else:
            x0 = x - sigma * eps
        up = np.sqrt(sigma_to**2 * (sigma**2 - sigma_to**2) / sigma**2)
        down = np.sqrt(sigma_to**2 - up**2)
        out = x + (x - x0) / sigma * (down - sigma)
        out = out + noise(x.shape) * up
        return Step(out.astype(np.float32), x0.astype(np.float32))


def make(name: str, config: dict[str, Any], steps: int) -> DDIM | EulerAncestral:
    """A scheduler by name ("ddim" or "euler_a") for ``steps`` inference steps."""
    if name == "ddim":
        return DDIM(config, steps)
    if name == "euler_a":
        return EulerAncestral(config, steps)
    raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(NAMES)}")
