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
import secrets
from typing import Any, cast

import bentoml
import numpy as np
from fastapi import Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from genserve import images
from genserve.errors import Conflict, InvalidInput
from genserve.imagegen.api import (
    KIND,
    GeneratedImage,
    GeneratedImages,
    ImagegenSettings,
    ImageRequest,
    JobStatus,
)
from genserve.imagegen.jobs import Job, JobStore
from genserve.imagegen.pipeline import ImageParams, ImagePipeline, ImageRow
from genserve.metrics import JOBS_IN_PROGRESS, SAMPLES, STAGE_SECONDS, UNET_STEP_SECONDS
from services.base import ModelService, service_config
from services.fastpath import serve_fast
from services.wire import Limits, create_app

PREVIEW_SIDE = 64
FRAME_MS = 120

limits = Limits()
app = create_app(
    "genserve imagegen",
    "Stable Diffusion served from ONNX Runtime. Errors: "
    '{"error": {"code", "message", "field", "request_id"}}.',
    limits,
)


@bentoml.service(**service_config(KIND.name, KIND.timeout_s))
@bentoml.asgi_app(app, path="/v1")
class ImagegenService(ModelService[ImagePipeline]):
    kind_name = "imagegen"
    limits = limits

    def __init__(self) -> None:
        super().__init__()
        gauge = JOBS_IN_PROGRESS.labels(self.model)
        settings = cast(ImagegenSettings, self.settings)
        self.jobs = JobStore(max_jobs=settings.max_jobs, on_count=gauge.set)

    def busy(self) -> bool:
        return super().busy() or self.jobs.unfinished() > 0

    def loaded(self, served: ImagePipeline) -> None:
        served.step_observer = UNET_STEP_SECONDS.labels(self.model).observe

    def run_batch(self, rows: list[Any], key: Any) -> list[tuple[np.ndarray, list[np.ndarray]]]:
        results = self.working_model.run_batch(rows, key)
        SAMPLES.labels(self.model).inc(len(rows))
        return list(results)

    def _rows(self, req: ImageRequest) -> tuple[int, list[ImageRow]]:
        if req.format != "json" and req.n != 1:
            raise InvalidInput(f"format {req.format!r} returns one image; use json", field="format")
        if req.format != "json" and req.frames != "none":
            raise InvalidInput("frames come with format json", field="frames")
        self.served.check(_params(req), [req.prompt, req.negative_prompt])
        seed = secrets.randbits(48) if req.seed is None else req.seed
        keep = req.frames != "none"
        rows = [
            ImageRow(req.prompt, req.negative_prompt, seed + i, req.guidance_scale, keep)
            for i in range(req.n)
        ]
        return seed, rows

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

        def work(on_step: Any) -> Any:
            def step(i: int, denoised: np.ndarray) -> bool:
                decoded = self.working_model.decode(denoised[:1])[0]
                preview = images.thumbnail(decoded, PREVIEW_SIDE)
                return bool(on_step(i + 1, req.steps, preview))

            results = self.working_model.generate_rows(rows, _params(req), on_step=step)
            SAMPLES.labels(self.model).inc(len(rows))
            return _encode(req, seed, list(results))

        return _status(self.jobs.submit(req.steps, work, seed=seed))

    @app.get("/jobs/{job_id}", response_model=JobStatus, response_model_exclude_none=True)
    async def job_status(self, job_id: str) -> JobStatus:
        return _status(self.jobs.get(job_id))

    @app.get("/jobs/{job_id}/result")
    async def job_result(self, job_id: str) -> Any:
        job = self.jobs.get(job_id)
        if job.status != "succeeded":
            raise Conflict(f"job is {job.status}, not succeeded", field="job_id")
        if isinstance(job.result, BaseModel):  # the same JSON as the synchronous answer
            return JSONResponse(job.result.model_dump(exclude_none=True))
        return job.result

    @app.delete("/jobs/{job_id}", response_model=JobStatus, response_model_exclude_none=True)
    async def cancel_job(self, job_id: str, response: Response) -> JobStatus:
        """Cancel: 202 "cancelling" while a running job winds down (its current step
        ends it), 200 with the status otherwise (a queued job is cancelled at once; a
        finished one is left as it is)."""
        job = self.jobs.cancel(job_id)
        if job.status == "cancelling":
            response.status_code = 202
        return _status(job)

    @app.get("/model")
    async def model_info(self) -> dict[str, Any]:
        """The served model's manifest summary, scheduler settings and provider."""
        return self.describe()


def _params(req: ImageRequest) -> ImageParams:
    return ImageParams(req.steps, req.guidance_scale, req.width, req.height, req.scheduler)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _status(job: Job) -> JobStatus:
    preview = None if job.preview is None else _b64(images.png(job.preview))
    return JobStatus(
        id=job.id,
        status=job.status,
        seed=job.seed or 0,
        step=job.step,
        steps=job.steps,
        preview_png_base64=preview,
        error=job.error,
    )


def _encode(req: ImageRequest, seed: int, results: list) -> Any:
    if req.format in ("png", "jpeg"):
        data, media = images.encode(results[0][0], req.format)
        return Response(data, 200, {"x-genserve-seed": str(seed)}, media)
    out = []
    for i, (pixels, history) in enumerate(results):
        frames = None
        if req.frames != "none":
            frames = _b64(images.frames(history, req.frames, FRAME_MS))
        out.append(
            GeneratedImage(seed=seed + i, png_base64=_b64(images.png(pixels)), frames_base64=frames)
        )
    return GeneratedImages(images=out)


serve_fast(ImagegenService, app, limits)
