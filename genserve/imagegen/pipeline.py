"""Stable Diffusion in ONNX Runtime: prompt -> text embeddings -> denoising loop -> image.

Classifier-free guidance runs the unconditional (negative prompt) and conditional halves
in one UNet call. Every image has its own seed: its initial latent and (for ancestral
schedulers) its per-step noise come from ``numpy.random.default_rng([seed, 0])`` alone,
so an image does not depend on the other images it was generated with.

``generate`` is the pipeline; ``generate_rows`` and ``run_batch`` serve it: one
``ImageRow`` per image, the optional per-step frames, the UNet step timing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genserve.artifacts import load_manifest
from genserve.config import RuntimeSettings
from genserve.errors import InvalidInput
from genserve.imagegen import schedulers
from genserve.limits import MAX_PROMPT_CHARS, MAX_SIDE, MAX_STEPS, MIN_SIDE
from genserve.runtime import OnnxSession
from genserve.serving import ServedModel

# The files of a built model folder (export.py writes them).
TEXT_FILE, UNET_FILE, VAE_FILE = "text_encoder.onnx", "unet.onnx", "vae_decoder.onnx"
TOKENIZER_FILE, SETTINGS_FILE = "tokenizer.json", "imagegen.json"

NoiseFn = schedulers.NoiseFn


@dataclass(frozen=True)
class ImageParams:
    """One generation's settings; requests with equal ones can share a batch."""

    steps: int = 25
    guidance: float = 4.0
    width: int = 32
    height: int = 32
    scheduler: str = "ddim"


@dataclass(frozen=True)
class ImageRow:
    """One image of a batch: what differs between images that share ``ImageParams``."""

    prompt: str
    negative_prompt: str
    seed: int
    guidance: float
    frames: bool = False  # keep the decoded estimate of every step (for a GIF or a strip)


# One generated image: its pixels (H, W, 3) uint8 and, if its row asked, one frame per step.
ImageResult = tuple[np.ndarray, list[np.ndarray]]


def seeded_noise(seed: int) -> NoiseFn:
    """Gaussian noise for one image, from its seed only."""
    rng = np.random.default_rng([seed, 0])
    return lambda shape: rng.standard_normal(shape).astype(np.float32)


# on_step(step index, current clean-latent estimates (N, C, h, w)) -> False to cancel
StepCallback = Callable[[int, np.ndarray], bool]


class Cancelled(Exception):
    """A step callback asked to stop."""


class ImagePipeline(ServedModel[ImageParams]):
    """A verified Stable Diffusion model folder: text encoder, UNet and VAE decoder in ONNX
    Runtime, and the CLIP tokenizer."""

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
        # Called with the seconds of each denoising step of generate_rows (the service
        # feeds a histogram); the library itself records no metrics.
        self.step_observer: Callable[[float], None] | None = None

    @property
    def provider(self) -> str:
        """The execution provider the UNet runs on (where the time goes)."""
        return self.unet.provider

    def describe(self) -> dict[str, Any]:
        """The manifest summary, the pipeline settings and the execution provider."""
        return {**super().describe(), "config": self.config}

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
        # A model folder says how large it serves (export: twice its trained size);
        # one exported before it did gets the API's bound.
        largest = min(MAX_SIDE, int(self.config.get("max_size", MAX_SIDE)))
        for name, side in (("width", params.width), ("height", params.height)):
            if side % 8 or not MIN_SIDE <= side <= largest:
                raise InvalidInput(
                    f"{name} must be a multiple of 8 in [{MIN_SIDE}, {largest}] for this "
                    f"model (trained at {self.config['default_size']})",
                    field=name,
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
        context.flags.writeable = False  # the same embeddings every step (IO binding keeps them)
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

    def generate_rows(
        self,
        rows: Sequence[ImageRow],
        params: ImageParams,
        on_step: StepCallback | None = None,
    ) -> list[ImageResult]:
        """``generate`` for rows that share ``params``: one (pixels, frames) per row.

        When any row asks for frames, every step's estimate is decoded (for the whole
        batch, in one VAE call) and each row that asked gets its own; rows that did not
        get an empty list. ``step_observer`` gets each step's seconds since the previous
        step (the first since the call, prompt encoding included), excluding the frame
        decoding and ``on_step`` (previews, cancellation), which are not UNet time.
        """
        keep_frames = any(r.frames for r in rows)
        history: list[np.ndarray] = []
        last = time.perf_counter()

        def step(i: int, denoised: np.ndarray) -> bool:
            nonlocal last
            if self.step_observer is not None:
                self.step_observer(time.perf_counter() - last)
            if keep_frames:
                history.append(self.decode(denoised))
            keep_going = on_step(i, denoised) if on_step is not None else True
            last = time.perf_counter()
            return bool(keep_going)

        pixels = self.generate(
            [r.prompt for r in rows],
            [r.negative_prompt for r in rows],
            [r.seed for r in rows],
            params,
            guidance=[r.guidance for r in rows],
            on_step=step,
        )
        return [
            (pixels[j], [h[j] for h in history] if row.frames else []) for j, row in enumerate(rows)
        ]

    def run_batch(self, rows: list[ImageRow], params: ImageParams) -> list[ImageResult]:
        """``generate_rows`` as the batcher calls it: rows of requests that share
        ``params`` (size, steps, scheduler)."""
        return self.generate_rows(rows, params)
