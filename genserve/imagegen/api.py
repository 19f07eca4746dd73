"""The image generation kind's contract: its settings, REST schemas and routes, its Open
Inference Protocol v2 tensors, and its entry in genserve's table of model kinds
(``KIND``).

Light on purpose (pydantic and numpy): the gateway and the CLI import it without a
model runtime.
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import SettingsConfigDict

from genserve.errors import InvalidInput
from genserve.kinds import Example, KindSettings, ModelKind, PullSpec, Route
from genserve.limits import MAX_IMAGES, MAX_PROMPT_CHARS, MAX_SEED, MAX_SIDE, MAX_STEPS, MIN_SIDE
from genserve.protocol.mapping import Call, ModelSpec, TensorMetadata, image_tensor, options, texts
from genserve.protocol.tensors import InferRequest, Tensor


class ImagegenSettings(KindSettings):
    """The image generation service (``GENSERVE_IMAGEGEN_*``)."""

    model_config = SettingsConfigDict(env_prefix="GENSERVE_IMAGEGEN_")

    model: str = Field("imagegen", description="model folder name under GENSERVE_MODELS_DIR")
    max_batch_size: int = Field(16, ge=1, le=256, description="images per UNet batch")
    max_queue: int = Field(128, ge=1, le=100_000, description="queued images before 503")
    max_jobs: int = Field(32, ge=1, le=10_000, description="unfinished async jobs before 503")


# -- REST -------------------------------------------------------------------------------


class ImageRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    prompt: str = Field(
        min_length=1, max_length=MAX_PROMPT_CHARS, pattern=r"\S", description="not blank"
    )
    negative_prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    n: int = Field(1, ge=1, le=MAX_IMAGES, description="images; image i uses seed + i")
    steps: int = Field(25, ge=1, le=MAX_STEPS)
    guidance_scale: float = Field(4.0, ge=0.0, le=30.0, description="> 1 enables guidance")
    width: int = Field(32, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8)
    height: int = Field(32, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8)
    scheduler: Literal["ddim", "euler_a"] = "ddim"
    seed: int | None = Field(None, ge=0, le=MAX_SEED - MAX_IMAGES, description="omitted: random")
    format: Literal["json", "png", "jpeg"] = Field(
        "json", description="png/jpeg: one image (n = 1); json: base64 PNGs"
    )
    frames: Literal["none", "gif", "strip"] = Field(
        "none", description="json only: the denoising of each image, noise to picture"
    )


class GeneratedImage(BaseModel):
    seed: int
    png_base64: str
    frames_base64: str | None = Field(None, description="GIF or PNG strip of the denoising")


class GeneratedImages(BaseModel):
    images: list[GeneratedImage]


class JobStatus(BaseModel):
    id: str
    status: Literal["queued", "running", "cancelling", "succeeded", "failed", "cancelled"]
    seed: int = Field(description="the first image's seed; image i uses seed + i")
    step: int
    steps: int
    preview_png_base64: str | None = None
    error: str | None = None


# -- Open Inference Protocol v2 -----------------------------------------------------------
# Image i equals POST /v1/images with seed + i: the same pixels as the REST API.

_OPTIONS = ("steps", "guidance_scale", "width", "height", "scheduler")


def _plan(request: InferRequest) -> list[Call]:
    prompts = texts(request.input("PROMPT"))
    if len(prompts) > MAX_IMAGES:
        raise InvalidInput(f"at most {MAX_IMAGES} prompts", field="inputs.PROMPT")
    negative = ""
    if any(t.name == "NEGATIVE_PROMPT" for t in request.inputs):
        values = texts(request.input("NEGATIVE_PROMPT"))
        if len(values) != 1:
            raise InvalidInput("NEGATIVE_PROMPT takes one text", field="inputs.NEGATIVE_PROMPT")
        negative = values[0]
    seed = request.parameters.get("seed")
    base = secrets.randbits(48) if seed is None else seed
    extra = options(request, _OPTIONS)
    return [
        Call(
            "/v1/images",
            {
                "prompt": prompt,
                "negative_prompt": negative,
                "seed": base + i,
                "n": 1,
                "format": "json",
                **extra,
            },
        )
        for i, prompt in enumerate(prompts)
    ]


def _collect(calls: list[Call], results: list[dict[str, Any]]) -> list[Tensor]:
    encoded = [r["images"][0]["png_base64"] for r in results]
    seeds = np.array([c.body["seed"] for c in calls], dtype=np.uint64)
    return [image_tensor(encoded), Tensor("SEED", "UINT64", seeds)]


OIP = ModelSpec(
    "imagegen",
    (
        TensorMetadata("PROMPT", "BYTES", (-1,)),
        TensorMetadata("NEGATIVE_PROMPT", "BYTES", (1,), optional=True),
    ),
    (TensorMetadata("IMAGE", "UINT8", (-1, -1, -1, 3)), TensorMetadata("SEED", "UINT64", (-1,))),
    {
        "steps": int,
        "guidance_scale": (int, float),
        "width": int,
        "height": int,
        "scheduler": str,
        "seed": int,
    },
    _plan,
    _collect,
    {
        "prompt": "inputs.PROMPT",
        "negative_prompt": "inputs.NEGATIVE_PROMPT",
        **{k: f"parameters.{k}" for k in (*_OPTIONS, "seed")},
    },
)

_JOB = "/v1/jobs/{job_id}"
_IMAGE = ("image/png", "image/jpeg")  # format png, jpeg
KIND = ModelKind(
    name="imagegen",
    title="image generation: a Stable Diffusion pipeline, an image appearing from noise",
    service="services.imagegen:ImagegenService",
    port_offset=12,
    settings=ImagegenSettings,
    model="genserve.imagegen.pipeline:ImagePipeline",
    routes=(
        Route(
            "POST",
            "/v1/images",
            "Generate images synchronously; `frames` adds the denoising, noise to picture.",
            ImageRequest,
            GeneratedImages,
            media_types=_IMAGE,
        ),
        Route(
            "POST",
            "/v1/jobs",
            "Queue a generation; poll GET /v1/jobs/{job_id} for progress and a preview.",
            ImageRequest,
            JobStatus,
            status_code=202,
            control=True,
        ),
        Route("GET", _JOB, "A job's status, progress and preview.", None, JobStatus, control=True),
        Route(
            "GET",
            _JOB + "/result",
            "A finished job's images (409 until it has succeeded).",
            None,
            GeneratedImages,
            control=True,
            media_types=_IMAGE,
            statuses=(409,),
        ),
        Route(
            "DELETE",
            _JOB,
            "Cancel a job; 202 'cancelling' while a running one stops.",
            None,
            JobStatus,
            control=True,
            statuses=(202,),
        ),
    ),
    oip=OIP,
    timeout_s=300.0,
    cpu_weight=2.0,
    precisions=("fp32", "int8", "fp16"),
    export="genserve.imagegen.export:export",
    train="genserve.imagegen.train:train",
    steps_key="unet_steps",
    bench="genserve.imagegen.bench:main",
    pull=PullSpec(
        (
            "model_index.json",
            "scheduler/*.json",
            "tokenizer/*",
            "text_encoder/config.json",
            "text_encoder/model.safetensors",
            "unet/config.json",
            "unet/diffusion_pytorch_model.safetensors",
            "vae/config.json",
            "vae/diffusion_pytorch_model.safetensors",
        ),
        "unet/diffusion_pytorch_model.safetensors",
    ),
    example=Example(
        "/v1/images",
        {"prompt": "a red circle", "steps": 2, "seed": 1, "format": "png"},
        (("PROMPT", "BYTES", ("a red circle",)),),
        {"steps": 2, "seed": 1},
    ),
)
