"""The GAN kind's contract: its settings, REST schemas and routes, its Open Inference
Protocol v2 tensors, and its entry in genserve's table of model kinds (``KIND``).

Light on purpose (pydantic and numpy): the gateway and the CLI import it without a
model runtime.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import SettingsConfigDict

from genserve.errors import InvalidInput
from genserve.kinds import Example, KindSettings, ModelKind, Route
from genserve.limits import MAX_FRAMES, MAX_SAMPLES, MAX_SEED, MIN_FRAMES
from genserve.protocol.mapping import Call, ModelSpec, TensorMetadata, image_tensor, options
from genserve.protocol.tensors import InferRequest, Tensor


class GanSettings(KindSettings):
    """The GAN service (``GENSERVE_GAN_*``)."""

    model_config = SettingsConfigDict(env_prefix="GENSERVE_GAN_")

    model: str = Field("gan", description="model folder name under GENSERVE_MODELS_DIR")


# -- REST -------------------------------------------------------------------------------

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


# -- Open Inference Protocol v2 -----------------------------------------------------------
# Row i equals POST /v1/samples {"seed": SEED[i], "digit": DIGIT[i], "n": 1}: the same
# pixels as the REST API.


def _plan(request: InferRequest) -> list[Call]:
    seeds = request.input("SEED").data.reshape(-1)
    if len(seeds) > MAX_SAMPLES:
        raise InvalidInput(f"at most {MAX_SAMPLES} seeds", field="inputs.SEED")
    digits = np.full(seeds.shape, -1, dtype=np.int64)
    if any(t.name == "DIGIT" for t in request.inputs):
        digits = request.input("DIGIT").data.reshape(-1).astype(np.int64)
        if digits.shape != seeds.shape:
            raise InvalidInput("DIGIT needs one value per SEED", field="inputs.DIGIT")
    extra = options(request, ("truncation",))
    calls = []
    for seed, digit in zip(seeds.tolist(), digits.tolist(), strict=True):
        body: dict[str, Any] = {"seed": int(seed), "n": 1, "format": "json", **extra}
        if digit != -1:
            body["digit"] = int(digit)
        calls.append(Call("/v1/samples", body))
    return calls


def _collect(_calls: list[Call], results: list[dict[str, Any]]) -> list[Tensor]:
    encoded = [r["images"][0]["png_base64"] for r in results]
    digits = np.array([r["images"][0]["digit"] for r in results], dtype=np.int32)
    return [image_tensor(encoded), Tensor("DIGIT", "INT32", digits)]


OIP = ModelSpec(
    "gan",
    (
        TensorMetadata("SEED", "INT64", (-1,)),
        TensorMetadata("DIGIT", "INT32", (-1,), optional=True),
    ),
    (TensorMetadata("IMAGE", "UINT8", (-1, -1, -1, 3)), TensorMetadata("DIGIT", "INT32", (-1,))),
    {"truncation": (int, float)},
    _plan,
    _collect,
    {"seed": "inputs.SEED", "digit": "inputs.DIGIT", "truncation": "parameters.truncation"},
)

KIND = ModelKind(
    name="gan",
    title="GAN sampling: digits from a class-conditional generator",
    service="services.gan:GanService",
    port_offset=10,
    settings=GanSettings,
    model="genserve.gan.sampler:GanSampler",
    routes=(
        Route(
            "POST",
            "/v1/samples",
            "Sample digits from the GAN; the same seed gives the same bytes.",
            SampleRequest,
            DigitImages,
            media_types=("image/png",),  # format png, grid
        ),
        Route(
            "POST",
            "/v1/interpolate",
            "Walk the latent space from seed_a's image to seed_b's (GIF, PNG strip or JSON).",
            InterpolateRequest,
            DigitImages,
            media_types=("image/gif", "image/png"),
        ),
    ),
    oip=OIP,
    timeout_s=30.0,
    export="genserve.gan.export:export",
    train="genserve.gan.train:train",
    bench="genserve.gan.bench:main",
    example=Example(
        "/v1/samples", {"seed": 1, "digit": 3, "format": "png"}, (("SEED", "INT64", (1,)),)
    ),
)
