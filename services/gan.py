"""GAN sampling service: digits from a class-conditional generator in ONNX Runtime.

POST /v1/samples      1..64 images of one digit or random digits (PNG, base64 JSON or a grid)
POST /v1/interpolate  2..64 frames between two seeds (animated GIF, PNG strip or JSON)
GET  /v1/model        the loaded model: manifest, tensors, execution provider

Concurrent requests are batched row by row into one ONNX Runtime call; a row's
pixels do not depend on what it was batched with.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from typing import Any

import bentoml
import numpy as np
from fastapi import Response

from genserve import images
from genserve.errors import InvalidInput
from genserve.gan.api import KIND, DigitImage, DigitImages, InterpolateRequest, SampleRequest
from genserve.gan.sampler import GanSampler, Rows, to_uint8
from genserve.metrics import SAMPLES, STAGE_SECONDS
from services.base import ModelService, service_config
from services.fastpath import serve_fast
from services.wire import Limits, create_app

log = logging.getLogger("genserve.gan")

limits = Limits()
app = create_app(
    "genserve GAN",
    "Class-conditional digit GAN served from ONNX Runtime. Errors: "
    '{"error": {"code", "message", "field", "request_id"}}.',
    limits,
)


@bentoml.service(**service_config(KIND.name, KIND.timeout_s))
@bentoml.asgi_app(app, path="/v1")
class GanService(ModelService[GanSampler]):
    kind_name = "gan"
    limits = limits

    async def _pixels(self, rows: Rows) -> np.ndarray:
        images = await self.batcher.submit(rows.split())
        SAMPLES.labels(self.model).inc(len(rows.digits))
        return to_uint8(np.stack(images))

    async def _encode(self, fn: Any, *args: Any) -> Any:
        with STAGE_SECONDS.labels(self.model, "postprocess").time():
            return await asyncio.to_thread(fn, *args)

    @app.post("/samples", response_model=DigitImages)
    async def samples(self, req: SampleRequest) -> Any:
        """Sample ``n`` images. The same seed and parameters give the same bytes."""
        if req.format == "png" and req.n != 1:
            raise InvalidInput(
                "format 'png' returns one image; use 'grid' or 'json'", field="format"
            )
        seed = secrets.randbits(48) if req.seed is None else req.seed
        rows = self.served.sample_rows(req.n, seed, req.digit, req.truncation)
        pixels = await self._pixels(rows)
        headers = {"x-genserve-seed": str(seed), "x-genserve-digits": _digits(rows.digits)}
        if req.format == "png":
            return Response(await self._encode(images.png, pixels[0]), 200, headers, "image/png")
        if req.format == "grid":
            data = await self._encode(lambda: images.png(images.grid(list(pixels))))
            return Response(data, 200, headers, "image/png")
        encoded = await self._encode(lambda: [images.png(p) for p in pixels])
        return _json_images(seed, pixels, rows, encoded)

    @app.post("/interpolate", response_model=DigitImages)
    async def interpolate(self, req: InterpolateRequest) -> Any:
        """Frames along the latent path from seed_a's image to seed_b's."""
        rows = self.served.interpolation_rows(
            req.seed_a, req.seed_b, req.frames, req.truncation, req.digit_a, req.digit_b
        )
        pixels = await self._pixels(rows)
        headers = {"x-genserve-digits": _digits(rows.digits)}
        if req.format == "gif":
            data = await self._encode(images.gif, list(pixels), req.frame_ms)
            return Response(data, 200, headers, "image/gif")
        if req.format == "png":
            data = await self._encode(lambda: images.png(images.strip(list(pixels))))
            return Response(data, 200, headers, "image/png")
        encoded = await self._encode(lambda: [images.png(p) for p in pixels])
        return _json_images(req.seed_a, pixels, rows, encoded)

    @app.get("/model")
    async def model_info(self) -> dict[str, Any]:
        """The served model's manifest summary and the execution provider in use."""
        return self.describe()


def _digits(digits: tuple[int | None, ...]) -> str:
    return ",".join("-" if d is None else str(d) for d in digits)


def _json_images(seed: int, pixels: np.ndarray, rows: Rows, encoded: list[bytes]) -> DigitImages:
    return DigitImages(
        seed=seed,
        width=int(pixels.shape[2]),
        height=int(pixels.shape[1]),
        images=[
            DigitImage(digit=d, png_base64=base64.b64encode(b).decode("ascii"))
            for d, b in zip(rows.digits, encoded, strict=True)
        ],
    )


serve_fast(GanService, app, limits)
