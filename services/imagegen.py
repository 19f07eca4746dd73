"""Image generation service: a Stable Diffusion pipeline in ONNX Runtime.

POST   /v1/images                synchronous generation (PNG, JPEG or base64 JSON; frames)
POST   /v1/jobs                  the same request as an asynchronous job (202)
GET    /v1/jobs/{job_id}         status, progress and a preview of the current estimate
GET    /v1/jobs/{job_id}/result  the finished job's images
DELETE /v1/jobs/{job_id}         cancel
GET    /v1/model                 the loaded model

Synchronous requests with the same size, steps and scheduler share UNet calls.
"""

from __future__ import annotations

import asyncio
import base64
import io
import secrets
import time
from typing import Any

import bentoml
import numpy as np
from fastapi import Response
from fastapi.responses import JSONResponse
from PIL import Image
from pydantic import BaseModel

from genserve import images, resources
from genserve.batching import MicroBatcher
from genserve.config import Settings
from genserve.errors import InvalidInput
from genserve.imagegen.jobs import JobStore
from genserve.imagegen.pipeline import (
    ImageParams,
    ImagePipeline,
)
from genserve.metrics import (
    JOBS_IN_PROGRESS,
    SAMPLES,
    STAGE_SECONDS,
    UNET_STEP_SECONDS,
    batch_observer,
    queue_gauge,
    record_model,
)
from services.schemas import GeneratedImage, GeneratedImages, ImageRequest, JobStatus
from services.web import Limits, create_app

PREVIEW_SIDE = 64


limits = Limits()
app = create_app(
    "genserve imagegen",
    "Stable Diffusion served from ONNX Runtime. Errors: "
    '{"error": {"code", "message", "field", "request_id"}}.',
    limits,
)


@bentoml.service(
    name="imagegen",
    workers=1,
    traffic={"timeout": 300},
    logging={"access": {"enabled": False}},  # ours carries the request id
)
@bentoml.asgi_app(app, path="/v1")
class ImagegenService:
    def __init__(self) -> None:
        settings = Settings()
        limits.max_body_bytes = settings.server.max_body_bytes
        self.model = settings.imagegen.model
        started = time.perf_counter()
        self.pipeline = ImagePipeline.from_models_dir(
            settings.models.dir, self.model, settings.runtime, verify=settings.models.verify
        )
        record_model(self.model, time.perf_counter() - started, self.pipeline.unet.provider)
        resources.start_sampler("imagegen")
        self.batcher = MicroBatcher.from_settings(
            self._run_rows,
            settings.imagegen,
            batch_observer(self.model),
            queue_gauge(self.model, settings.imagegen.max_queue),
        )
        gauge = JOBS_IN_PROGRESS.labels(self.model)
        self.jobs = JobStore(max_jobs=settings.imagegen.max_jobs, on_count=gauge.set)
        self.ready = True

    def __is_ready__(self) -> bool:
        return getattr(self, "ready", False)

    # -- work ---------------------------------------------------------------------------

    def _run_rows(self, rows: list[tuple[str, str, int, float, str]], params: ImageParams) -> list:
        """Batched generation: rows are (prompt, negative, seed, guidance, frames)."""
        prompts, negative, seeds, guidance, frames = zip(*rows, strict=True)
        return self._generate(
            list(prompts),
            list(negative),
            list(seeds),
            params,
            list(guidance),
            any(f != "none" for f in frames),
        )

    def _generate(
        self,
        prompts: list[str],
        negative: list[str],
        seeds: list[int],
        params: ImageParams,
        guidance: list[float],
        keep_frames: bool,
        on_step: Any = None,
    ) -> list[tuple[np.ndarray, list[np.ndarray]]]:
        history: list[np.ndarray] = []
        last = [time.perf_counter()]
        unet_step = UNET_STEP_SECONDS.labels(self.model)

        def step(i: int, denoised: np.ndarray) -> bool:
            now = time.perf_counter()
            unet_step.observe(now - last[0])
            if keep_frames:
                history.append(self.pipeline.decode(denoised))
            keep_going = on_step(i, denoised) if on_step is not None else True
            last[0] = time.perf_counter()  # previews and frames are not UNet time
            return bool(keep_going)

        pixels = self.pipeline.generate(
            prompts, negative, seeds, params, guidance=guidance, on_step=step
        )
        SAMPLES.labels(self.model).inc(len(prompts))
        return [(pixels[j], [h[j] for h in history]) for j in range(len(prompts))]

    def _rows(self, req: ImageRequest) -> tuple[int, list[tuple[str, str, int, float, str]]]:
        if req.format != "json" and req.n != 1:
            raise InvalidInput(f"format {req.format!r} returns one image; use json", field="format")
        if req.format != "json" and req.frames != "none":
            raise InvalidInput("frames come with format json", field="frames")
        self.pipeline.check(_params(req), [req.prompt, req.negative_prompt])
        seed = secrets.randbits(48) if req.seed is None else req.seed
        return seed, [
            (req.prompt, req.negative_prompt, seed + i, req.guidance_scale, req.frames)
            for i in range(req.n)
        ]

    # -- routes -------------------------------------------------------------------------

    @app.post("/images", response_model=GeneratedImages, response_model_exclude_none=True)
    async def generate(self, req: ImageRequest) -> Any:
        """Generate ``n`` images. The same seed and settings give the same bytes."""
        seed, rows = self._rows(req)
        results = await self.batcher.submit(rows, key=_params(req))
        with STAGE_SECONDS.labels(self.model, "postprocess").time():
            return await asyncio.to_thread(_encode, req, seed, list(results))

    @app.post("/jobs", status_code=202, response_model=JobStatus, response_model_exclude_none=True)
    async def submit_job(self, req: ImageRequest) -> JobStatus:
        """Queue a generation; poll its status for progress and a preview."""
        seed, rows = self._rows(req)
        prompts, negative, seeds, guidance, _frames = (list(c) for c in zip(*rows, strict=True))

        def work(on_step: Any) -> Any:
            def step(i: int, denoised: np.ndarray) -> bool:
                preview = _thumbnail(self.pipeline.decode(denoised[:1])[0])
                return bool(on_step(i + 1, req.steps, preview))

            results = self._generate(
                prompts, negative, seeds, _params(req), guidance, req.frames != "none", step
            )
            return _encode(req, seed, results)

        job = self.jobs.submit(req.steps, work)
        return _status(job)

    @app.get("/jobs/{job_id}", response_model=JobStatus, response_model_exclude_none=True)
    async def job_status(self, job_id: str) -> JobStatus:
        return _status(self.jobs.get(job_id))

    @app.get("/jobs/{job_id}/result")
    async def job_result(self, job_id: str) -> Any:
        job = self.jobs.get(job_id)
        if job.status != "succeeded":
            raise InvalidInput(f"job is {job.status}, not succeeded", field="job_id")
        if isinstance(job.result, BaseModel):  # the same JSON as the synchronous answer
            return JSONResponse(job.result.model_dump(exclude_none=True))
        return job.result

    @app.delete("/jobs/{job_id}", response_model=JobStatus, response_model_exclude_none=True)
    async def cancel_job(self, job_id: str) -> JobStatus:
        return _status(self.jobs.cancel(job_id))

    @app.get("/model")
    async def model_info(self) -> dict[str, Any]:
        m = self.pipeline.manifest
        return {
            "name": m.name,
            "kind": m.kind,
            "config": self.pipeline.config,
            "provider": self.pipeline.unet.provider,
            "source": m.source,
        }


def _params(req: ImageRequest) -> ImageParams:
    return ImageParams(req.steps, req.guidance_scale, req.width, req.height, req.scheduler)


def _thumbnail(pixels: np.ndarray) -> np.ndarray:
    img = Image.fromarray(pixels)
    img.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    return np.asarray(img)


def _status(job: Any) -> JobStatus:
    preview = None
    if job.preview is not None:
        preview = base64.b64encode(images.png(job.preview)).decode("ascii")
    return JobStatus(
        id=job.id,
        status=job.status,
        step=job.step,
        steps=job.steps,
        preview_png_base64=preview,
        error=job.error,
    )


def _encode(req: ImageRequest, seed: int, results: list) -> Any:
    if req.format in ("png", "jpeg"):
        pixels = results[0][0]
        if req.format == "png":
            data, media = images.png(pixels), "image/png"
        else:
            buf = io.BytesIO()
            Image.fromarray(pixels).save(buf, format="JPEG", quality=95)
            data, media = buf.getvalue(), "image/jpeg"
        return Response(data, 200, {"x-genserve-seed": str(seed)}, media)
    out = []
    for i, (pixels, history) in enumerate(results):
        frames = None
        if req.frames == "gif":
            frames = base64.b64encode(images.gif(history, frame_ms=120)).decode("ascii")
        elif req.frames == "strip":
            frames = base64.b64encode(images.png(images.strip(history))).decode("ascii")
        out.append(
            GeneratedImage(
                seed=seed + i,
                png_base64=base64.b64encode(images.png(pixels)).decode("ascii"),
                frames_base64=frames,
            )
        )
    return GeneratedImages(images=out)
