"""Stable Diffusion in ONNX Runtime: prompt -> text embeddings -> denoising loop -> image.

Classifier-free guidance runs the unconditional (negative prompt) and conditional halves
in one UNet call. Every image has its own seed: its initial latent and (for ancestral
schedulers) its per-step noise come from ``numpy.random.default_rng([seed, 0])`` alone,
so an image does not depend on the other images it was generated with.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genserve.artifacts import load_manifest, resolve_model_dir
from genserve.config import RuntimeSettings
from genserve.errors import InvalidInput
from genserve.imagegen import schedulers
from genserve.imagegen.export import SETTINGS_FILE, TEXT_FILE, TOKENIZER_FILE, UNET_FILE, VAE_FILE
from genserve.limits import MAX_PROMPT_CHARS, MAX_SIDE, MAX_STEPS, MIN_SIDE
from genserve.runtime import OnnxSession

NoiseFn = schedulers.NoiseFn


@dataclass(frozen=True)
class ImageParams:
    """One generation's settings; requests with equal ones can share a batch."""

    steps: int = 25
    guidance: float = 4.0
    width: int = 32
    height: int = 32
    scheduler: str = "ddim"


def seeded_noise(seed: int) -> NoiseFn:
    """Gaussian noise for one image, from its seed only."""
    rng = np.random.default_rng([seed, 0])
    return lambda shape: rng.standard_normal(shape).astype(np.float32)


# on_step(step index, current clean-latent estimates (N, C, h, w)) -> False to cancel
StepCallback = Callable[[int, np.ndarray], bool]


class Cancelled(Exception):
    """A step callback asked to stop."""


class ImagePipeline:
    def __init__(self, folder: Path, settings: RuntimeSettings, *, verify: bool = True) -> None:
        from tokenizers import Tokenizer

        self.manifest = load_manifest(folder, kind="imagegen", verify=verify)
        self.config: dict[str, Any] = json.loads(self.manifest.path(SETTINGS_FILE).read_text())
        c = self.config
        latent = int(c["default_size"]) // int(c["vae_scale_factor"])
        dims = {"h": latent, "w": latent}
        self.text = OnnxSession(self.manifest.path(TEXT_FILE), settings, warmup_dims=dims)
        self.unet = OnnxSession(self.manifest.path(UNET_FILE), settings, warmup_dims=dims)
        self.vae = OnnxSession(self.manifest.path(VAE_FILE), settings, warmup_dims=dims)
        self.tokenizer = Tokenizer.from_file(str(self.manifest.path(TOKENIZER_FILE)))
        self.tokenizer.enable_truncation(c["max_tokens"])
        self.tokenizer.enable_padding(length=c["max_tokens"], pad_id=c["pad_token_id"])
        self.scale = int(c["vae_scale_factor"])

    @classmethod
    def from_models_dir(
        cls, models_dir: Path, name: str, settings: RuntimeSettings, *, verify: bool = True
    ) -> ImagePipeline:
        return cls(resolve_model_dir(models_dir, name), settings, verify=verify)

    def check(self, params: ImageParams, prompts: Sequence[str]) -> None:
        """InvalidInput naming the field unless every parameter is in range."""
        if params.scheduler not in schedulers.NAMES:
            raise InvalidInput(
                f"scheduler must be one of {', '.join(schedulers.NAMES)}", field="scheduler"
            )
        if not 1 <= params.steps <= MAX_STEPS:
            raise InvalidInput(f"steps must be in [1, {MAX_STEPS}]", field="steps")
        if not 0.0 <= params.guidance <= 30.0:
            raise InvalidInput("guidance_scale must be in [0, 30]", field="guidance_scale")
        for name, side in (("width", params.width), ("height", params.height)):
            if side % 8 or not MIN_SIDE <= side <= MAX_SIDE:
                raise InvalidInput(
                    f"{name} must be a multiple of 8 in [{MIN_SIDE}, {MAX_SIDE}]", field=name
                )
        for p in prompts:
            if len(p) > MAX_PROMPT_CHARS:
                raise InvalidInput(
                    f"prompt is longer than {MAX_PROMPT_CHARS} characters", field="prompt"
                )

    def encode(self, prompts: Sequence[str]) -> np.ndarray:
        """Text embeddings (N, T, D) of prompts padded/truncated to the model's length."""
        ids = np.array([e.ids for e in self.tokenizer.encode_batch(list(prompts))], np.int64)
        return self.text.run({"input_ids": ids})["last_hidden_state"]

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """uint8 images (N, H, W, 3) from latents."""
        image = self.vae.run(
            {"latents": (latents / self.config["scaling_factor"]).astype(np.float32)}
        )["image"]
        image = np.clip(image / 2 + 0.5, 0.0, 1.0).transpose(0, 2, 3, 1)
        return np.round(image * 255).astype(np.uint8)

    def generate(
        self,
        prompts: Sequence[str],
        negative: Sequence[str],
        seeds: Sequence[int],
        params: ImageParams,
        *,
        guidance: Sequence[float] | None = None,
        noise: Sequence[NoiseFn] | None = None,
        on_step: StepCallback | None = None,
    ) -> np.ndarray:
        """Images (N, H, W, 3) uint8, one per prompt; ``guidance`` may differ per image."""
        self.check(params, [*prompts, *negative])
        n = len(prompts)
        noise = noise or [seeded_noise(s) for s in seeds]
        scales = np.array(guidance if guidance is not None else [params.guidance] * n, np.float32)
        sched = schedulers.make(params.scheduler, self.config["scheduler"], params.steps)
        c = self.config
        shape = (c["latent_channels"], params.height // self.scale, params.width // self.scale)
        latents = np.stack([fn((1, *shape))[0] for fn in noise]) * np.float32(sched.init_sigma)
        cfg = bool((scales > 1.0).any())
        context = self.encode([*negative, *prompts]) if cfg else self.encode(list(prompts))
        for i, t in enumerate(sched.timesteps):
            x = sched.scale(latents, i)
            x_in = np.concatenate([x, x]) if cfg else x
            ts = np.full(len(x_in), t, np.float32)
            eps = self.unet.run(
                {
                    "sample": x_in.astype(np.float32),
                    "timestep": ts,
                    "encoder_hidden_states": context,
                }
            )["noise"]
            if cfg:
                uncond, cond = eps[:n], eps[n:]
                eps = uncond + scales[:, None, None, None] * (cond - uncond)
            rows = [sched.step(eps[j : j + 1], i, latents[j : j + 1], noise[j]) for j in range(n)]
            latents = np.concatenate([r.latents for r in rows])
            if (
                on_step is not None
                and on_step(i, np.concatenate([r.denoised for r in rows])) is False
            ):
                raise Cancelled()
        return self.decode(latents)
