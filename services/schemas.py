"""Request and response schemas of the REST API, shared by the model services and the gateway.

The gateway validates a request with the same schema as the service behind it, so a bad
request is refused at the front door and both publish the same OpenAPI. Ranges come
from genserve.limits; the library checks them again.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from genserve.limits import (
    MAX_BEAMS,
    MAX_CHARS,
    MAX_FRAMES,
    MAX_IMAGES,
    MAX_NEW_TOKENS,
    MAX_PROMPT_CHARS,
    MAX_SAMPLES,
    MAX_SEED,
    MAX_SIDE,
    MAX_STEPS,
    MAX_TEXTS,
    MIN_FRAMES,
    MIN_SIDE,
)

# -- GAN ------------------------------------------------------------------------------

Seed = Annotated[int, Field(ge=0, le=MAX_SEED, description="0 .. 2**64-1")]
Digit = Annotated[int, Field(ge=0, le=9)]
Truncation = Annotated[
    float,
    Field(gt=0.0, le=1.0, description="scales the latent toward the mean: lower = more typical"),
]


class SampleRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    digit: Digit | None = Field(None, description="the digit to draw; omitted = one per seed")
    n: int = Field(1, ge=1, le=MAX_SAMPLES, description="number of images")
    seed: Seed | None = Field(None, description="omitted = random; echoed in the response")
    truncation: Truncation = 1.0
    format: Literal["json", "png", "grid"] = Field(
        "json", description="json: base64 PNGs; png: one image (n=1); grid: one PNG of all"
    )


class InterpolateRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    seed_a: Seed
    seed_b: Seed
    frames: int = Field(16, ge=MIN_FRAMES, le=MAX_FRAMES)
    digit_a: Digit | None = Field(None, description="class at the start; omitted = seed's own")
    digit_b: Digit | None = Field(None, description="class at the end; omitted = seed's own")
    truncation: Truncation = 1.0
    format: Literal["gif", "png", "json"] = Field("gif", description="png: frames in a strip")
    frame_ms: int = Field(80, ge=20, le=2000, description="GIF frame duration")


class DigitImage(BaseModel):
    digit: int | None = Field(description="None for frames between two different digits")
    png_base64: str


class DigitImages(BaseModel):
    seed: int
    width: int
    height: int
    images: list[DigitImage]


# -- translation ----------------------------------------------------------------------

Text = Annotated[str, Field(min_length=1, max_length=MAX_CHARS)]


class TranslateRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    texts: list[Text] = Field(min_length=1, max_length=MAX_TEXTS, description="source texts")
    num_beams: int | None = Field(
        None, ge=1, le=MAX_BEAMS, description="1 = greedy; omitted = the model's default"
    )
    length_penalty: float = Field(
        1.0, ge=0.0, le=4.0, description="beam score = sum log p / length ** length_penalty"
    )
    max_new_tokens: int = Field(256, ge=1, le=MAX_NEW_TOKENS)
    return_attention: bool = Field(
        False, description="add source/target tokens' cross-attention (last decoder layer)"
    )


class Attention(BaseModel):
    layer: int = Field(description="decoder layer (0-based) whose cross-attention this is")
    heads: str = Field("mean", description="how heads are combined in `matrix`")
    matrix: list[list[float]] = Field(description="rows: target tokens; columns: source tokens")
    per_head: list[list[list[float]]] = Field(description="(head, target, source)")


class TranslationOut(BaseModel):
    text: str
    score: float
    source_tokens: list[str]
    target_tokens: list[str]
    attention: Attention | None = None


class TranslateResponse(BaseModel):
    translations: list[TranslationOut]


# -- image generation -----------------------------------------------------------------


class ImageRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
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
    status: str
    step: int
    steps: int
    preview_png_base64: str | None = None
    error: str | None = None
