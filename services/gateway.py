"""The gateway: one front door over HTTP and gRPC, the model services behind it by URL.

GET  /                          the playground (plain HTML, CSS and JS)
/v1/...                         the REST API: translate, images and jobs, GAN samples and
                                interpolation, validated here with the services' own schemas
                                and passed on with the request id
GET  /v1/models                 the models and whether their services are ready
/v2/...                         Open Inference Protocol v2 over HTTP (binary tensors too)
gRPC (GENSERVE_GATEWAY_GRPC_PORT) the same protocol: inference.GRPCInferenceService
/docs, /openapi.json            the API, for callers with a key (or from loopback, auth off)
/metrics                        Prometheus, for keys with the "metrics" scope (or loopback)

Every request passes the FrontDoor first: a request id, the API key and its scope, the
key's rate limit (429) and a bound on open requests (503 with Retry-After).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
from pathlib import Path
from typing import Any

import bentoml
from fastapi import Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ValidationError
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genserve import resources
from genserve.config import GatewaySettings, Settings
from genserve.errors import GenserveError, InvalidInput, NotFound
from genserve.metrics import GATEWAY_REJECTIONS, GATEWAY_REQUESTS, GATEWAY_SECONDS
from genserve.protocol.models import MODELS
from genserve.protocol.tensors import HEADER_LENGTH, encode_response, parse_request
from services import grpc_server
from services.backends import PASSED_BACK, Backends
from services.oip import SERVER_METADATA, Inference, check_version, spec
from services.schemas import (
    DigitImages,
    GeneratedImages,
    ImageRequest,
    InterpolateRequest,
    JobStatus,
    SampleRequest,
    TranslateRequest,
    TranslateResponse,
)
from services.security import Guard
from services.web import (
    REQUEST_ID_HEADER,
    Limits,
    create_app,
    error_response,
    invalid_input,
    printable,
    read_body,
    request_id,
    request_id_var,
)

log = logging.getLogger("genserve.gateway")
access = logging.getLogger("genserve.access")

PLAYGROUND = Path(__file__).resolve().parent / "playground"
QUIET = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})  # probes and scrapes
PUBLIC = frozenset({"/", "/livez", "/readyz", "/healthz", "/v2/health/live", "/v2/health/ready"})
DOCS = frozenset(
    {"/docs", "/redoc", "/openapi.json", "/docs.json", "/schema.json", "/docs/oauth2-redirect"}
)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
ROUTE_SCOPES = (
    ("/v1/translate", "translation"),
    ("/v1/images", "imagegen"),
    ("/v1/jobs", "imagegen"),
    ("/v1/samples", "gan"),
    ("/v1/interpolate", "gan"),
)
_MODEL_PATH = re.compile(r"/v[12]/models/([^/]+)")  # a model's own routes need its scope
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class State:
    """What the service builds at start-up; the app and middleware read it."""

    settings: GatewaySettings
    guard: Guard
    backends: Backends
    inference: Inference


state = State()
limits = Limits()
limits.access_log = False
limits.raw_body_paths = re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/infer$")


def scope_of(path: str) -> tuple[bool, str | None, bool]:
    """(public, scope, rate limited) for a path. A None scope = any valid key."""
    if path in PUBLIC or path.startswith("/static/"):
        return True, None, False
    if path == "/metrics":
        return False, "metrics", False
    if path in DOCS:
        return False, None, False
    for prefix, scope in ROUTE_SCOPES:
        if path == prefix or path.startswith(prefix + "/"):
            return False, scope, True
    match = _MODEL_PATH.match(path)
    if match and match.group(1) in MODELS:
        return False, match.group(1), True
    return False, None, True  # any valid key; then 404 for what does not exist


def route_of(scope: Scope) -> str:
    """The route template a request matched (``/v1/jobs/{job_id}``): a bounded label."""
    for route in app.router.routes:
        if route.matches(scope)[0] == Match.FULL:
            path = getattr(route, "path", "")
            return "unmatched" if path == "/{path:path}" else path or "unmatched"
    return "unmatched"


def _is_loopback(client: tuple[str, int] | None) -> bool:
    try:
        return client is not None and ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


class FrontDoor:
    """Request id, authentication, scope, rate limit and the bound on open requests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get(REQUEST_ID_HEADER, "")
        rid = request_id(given)
        token = request_id_var.set(rid)
        # The inner app (and every service behind it) keeps this id.
        scope["headers"] = [
            *(h for h in scope["headers"] if h[0].lower() != b"x-request-id"),
            (b"x-request-id", rid.encode()),
        ]
        started, status, who = time.perf_counter(), [0], ["-"]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                kept = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                message["headers"] = [*kept, (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self._handle(scope, receive, send_with_id, headers, who)
        finally:
            path = scope["path"]
            if path not in QUIET:
                elapsed = time.perf_counter() - started
                route = route_of(scope)
                method = scope["method"] if scope["method"] in METHODS else "OTHER"
                GATEWAY_REQUESTS.labels(route, method, str(status[0])).inc()
                GATEWAY_SECONDS.labels(route).observe(elapsed)
                access.info(
                    "%s %s %s %.1fms caller=%s",
                    method,
                    printable(path),
                    status[0],
                    elapsed * 1000,
                    who[0],
                )
            request_id_var.reset(token)

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], who: list[str]
    ) -> None:
        path, method = scope["path"], scope["method"]
        if not path.isprintable():
            # A decoded control character ("/metrics%0A") would match a route's "$" but not
            # the scope table: no such path exists, so nothing needs to see it.
            await error_response(NotFound("no such route", field="path"), path)(
                scope, receive, send
            )
            return
        public, needed, limited = scope_of(path)
        preflight = method == "OPTIONS" and "access-control-request-method" in headers
        if public or (preflight and state.settings.cors_origins):
            await self.app(scope, receive, send)
            return
        try:
            if not state.guard.auth and not limited:
                # Auth off (local development): metrics and docs only from this machine.
                if not _is_loopback(scope.get("client")):
                    raise NotFound("not found", field="path")
            else:
                client = (scope.get("client") or ("-", 0))[0]
                principal = state.guard.check(
                    headers.get("authorization"), needed, client, limit=limited
                )
                who[0] = principal.name
            slot = state.guard.slot()
        except GenserveError as exc:
            GATEWAY_REJECTIONS.labels(exc.code).inc()
            await error_response(exc, path)(scope, receive, send)
            return
        with slot:
            if method == "POST" and path in PASS_THROUGH and not state.settings.cors_origins:
                await pass_through(scope, receive, send, headers)
            else:
                await self.app(scope, receive, send)


# The POST routes of the REST API go straight from the front door to their service:
# the body is read (415, 413 as everywhere), validated with the route's schema (the same
# 400 naming the field) and forwarded as the caller's bytes; the service's answer goes
# back as it is. Skipping FastAPI's routing and request handling takes about 0.3 to 1 ms
# off every call on this machine (BENCHMARKS.md). FastAPI's declarations of the same
# routes below stay the OpenAPI contract, and serve them when CORS is on (its headers
# come from FastAPI's CORS middleware).
PASS_THROUGH: dict[str, tuple[str, type[BaseModel], str]] = {
    "/v1/translate": ("translation", TranslateRequest, "timeout_translation_s"),
    "/v1/images": ("imagegen", ImageRequest, "timeout_imagegen_s"),
    "/v1/jobs": ("imagegen", ImageRequest, "timeout_jobs_s"),
    "/v1/samples": ("gan", SampleRequest, "timeout_gan_s"),
    "/v1/interpolate": ("gan", InterpolateRequest, "timeout_gan_s"),
}


async def pass_through(scope: Scope, receive: Receive, send: Send, headers: dict[str, str]) -> None:
    path = scope["path"]
    model, schema, timeout = PASS_THROUGH[path]
    try:
        body = await read_body(scope, receive, headers, limits)
        if body is None:
            return  # the client went away
        try:
            schema.model_validate_json(body, strict=True)
        except ValidationError as exc:
            raise invalid_input(exc.errors()) from None
        upstream = await state.backends.request(
            model,
            "POST",
            path,
            content=body,
            headers={"content-type": "application/json", REQUEST_ID_HEADER: request_id_var.get()},
            timeout_s=getattr(state.settings, timeout),
        )
    except GenserveError as exc:
        await error_response(exc, path)(scope, receive, send)
        return
    kept = [
        (k.lower().encode("latin-1"), v.encode("latin-1"))
        for k, v in upstream.headers.items()
        if k.lower() in PASSED_BACK
    ]
    length = (b"content-length", str(len(upstream.content)).encode())
    await send(
        {"type": "http.response.start", "status": upstream.status_code, "headers": [*kept, length]}
    )
    await send({"type": "http.response.body", "body": upstream.content})


app = create_app(
    "genserve",
    "One front door to genserve's models: translation (MarianMT), image generation "
    "(Stable Diffusion) and GAN sampling. REST under /v1, the Open Inference Protocol v2 "
    "under /v2 (and over gRPC). Authenticate with `Authorization: Bearer <key>`. Errors: "
    '{"error": {"code", "message", "field", "request_id"}}; 400 invalid input, 401 no or '
    "bad key, 403 key out of scope, 413 body too large, 429 rate limited, 503 overloaded "
    "or a model service down (with Retry-After), 504 a model service too slow.",
    limits,
)


# -- REST: passed on to the model services ----------------------------------------------


async def _proxy(
    request: Request, model: str, path: str, timeout_s: float | None = None
) -> Response:
    body = await request.body() if request.method in ("POST", "PUT") else None
    headers = {REQUEST_ID_HEADER: request_id_var.get()}
    if body is not None:
        headers["content-type"] = "application/json"
    upstream = await state.backends.request(
        model, request.method, path, content=body, headers=headers, timeout_s=timeout_s
    )
    kept = {k: v for k, v in upstream.headers.items() if k.lower() in PASSED_BACK}
    return Response(upstream.content, upstream.status_code, kept)


@app.post("/v1/translate", response_model=TranslateResponse, tags=["translation"])
async def translate(req: TranslateRequest, request: Request) -> Response:
    """Translate 1..64 texts; `return_attention` adds the cross-attention matrix."""
    return await _proxy(request, "translation", "/v1/translate")


@app.post("/v1/images", response_model=GeneratedImages, tags=["imagegen"])
async def images(req: ImageRequest, request: Request) -> Response:
    """Generate images synchronously; `frames` adds the denoising, noise to picture."""
    return await _proxy(request, "imagegen", "/v1/images")


@app.post("/v1/jobs", status_code=202, response_model=JobStatus, tags=["imagegen"])
async def submit_job(req: ImageRequest, request: Request) -> Response:
    """Queue a generation; poll GET /v1/jobs/{job_id} for progress and a preview."""
    return await _proxy(request, "imagegen", "/v1/jobs", state.settings.timeout_jobs_s)


def _job_path(job_id: str, suffix: str = "") -> str:
    if not _JOB_ID.fullmatch(job_id):
        raise NotFound("no such job", field="job_id")
    return f"/v1/jobs/{job_id}{suffix}"


@app.get("/v1/jobs/{job_id}", response_model=JobStatus, tags=["imagegen"])
async def job_status(job_id: str, request: Request) -> Response:
    return await _proxy(request, "imagegen", _job_path(job_id), state.settings.timeout_jobs_s)


@app.get("/v1/jobs/{job_id}/result", response_model=GeneratedImages, tags=["imagegen"])
async def job_result(job_id: str, request: Request) -> Response:
    path = _job_path(job_id, "/result")
    return await _proxy(request, "imagegen", path, state.settings.timeout_jobs_s)


@app.delete("/v1/jobs/{job_id}", response_model=JobStatus, tags=["imagegen"])
async def cancel_job(job_id: str, request: Request) -> Response:
    return await _proxy(request, "imagegen", _job_path(job_id), state.settings.timeout_jobs_s)


@app.post("/v1/samples", response_model=DigitImages, tags=["gan"])
async def samples(req: SampleRequest, request: Request) -> Response:
    """Sample digits from the GAN; the same seed gives the same bytes."""
    return await _proxy(request, "gan", "/v1/samples")


@app.post("/v1/interpolate", response_model=DigitImages, tags=["gan"])
async def interpolate(req: InterpolateRequest, request: Request) -> Response:
    """Walk the latent space from seed_a's image to seed_b's (GIF, PNG strip or JSON)."""
    return await _proxy(request, "gan", "/v1/interpolate")


@app.get("/v1/models", tags=["models"])
async def models() -> dict[str, Any]:
    """The models behind the gateway and whether their services are ready."""
    return {
        "models": [
            {"name": b.name, "ready": b.ready, "url": f"/v1/models/{b.name}"}
            for b in state.backends.by_name.values()
        ]
    }


@app.get("/v1/models/{name}", tags=["models"])
async def model(name: str, request: Request) -> Response:
    """A model's manifest summary and execution provider, from its service."""
    state.backends.get(name)
    return await _proxy(request, name, "/v1/model", state.settings.timeout_jobs_s)


# -- Open Inference Protocol v2 over HTTP ------------------------------------------------


@app.get("/v2", tags=["v2"])
async def server_metadata() -> dict[str, Any]:
    return SERVER_METADATA


@app.get("/v2/health/live", tags=["v2"])
async def server_live() -> dict[str, bool]:
    return {"live": True}


@app.get("/v2/health/ready", tags=["v2"])
async def server_ready() -> JSONResponse:
    ready = state.inference.server_ready()
    return JSONResponse({"ready": ready}, 200 if ready else 503)


@app.get("/v2/models/{name}", tags=["v2"])
@app.get("/v2/models/{name}/versions/{version}", tags=["v2"])
async def model_metadata(name: str, version: str | None = None) -> dict[str, Any]:
    check_version(version)
    return spec(name).metadata()


@app.get("/v2/models/{name}/ready", tags=["v2"])
@app.get("/v2/models/{name}/versions/{version}/ready", tags=["v2"])
async def model_ready(name: str, version: str | None = None) -> JSONResponse:
    check_version(version)
    ready = state.inference.model_ready(name)
    return JSONResponse({"name": name, "ready": ready}, 200 if ready else 503)


@app.post("/v2/models/{name}/infer", tags=["v2"])
@app.post("/v2/models/{name}/versions/{version}/infer", tags=["v2"])
async def infer(name: str, request: Request, version: str | None = None) -> Response:
    """Inference with JSON tensors, or JSON followed by binary tensors (the header
    Inference-Header-Content-Length gives the JSON's length)."""
    check_version(version)
    header = request.headers.get(HEADER_LENGTH)
    if header is not None and not header.isdigit():
        raise InvalidInput(
            "Inference-Header-Content-Length must be an integer", field=HEADER_LENGTH
        )
    parsed = parse_request(await request.body(), int(header) if header is not None else None)
    outputs = await state.inference.infer(name, parsed)
    body, json_length = encode_response(name, "1", parsed, outputs)
    if json_length is None:
        return Response(body, 200, media_type="application/json")
    return Response(
        body, 200, {HEADER_LENGTH: str(json_length)}, media_type="application/octet-stream"
    )


# -- the playground ------------------------------------------------------------------------


@app.get("/", include_in_schema=False)
async def playground() -> FileResponse:
    return FileResponse(PLAYGROUND / "index.html")


app.mount("/static", StaticFiles(directory=PLAYGROUND), name="static")


@app.api_route(
    "/{path:path}",
    methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
    include_in_schema=False,
)
async def unknown(path: str) -> Response:
    """Any other path: the gateway's own 404, in the error shape."""
    raise NotFound(f"no route /{path}", field="path")


@bentoml.service(
    name="gateway",
    workers=1,
    traffic={"timeout": 600},
    logging={"access": {"enabled": False}},  # ours carries the request id
)
@bentoml.asgi_app(app, path="/")
class Gateway:
    def __init__(self) -> None:
        settings = Settings()
        limits.max_body_bytes = settings.server.max_body_bytes
        state.settings = settings.gateway
        state.guard = Guard(settings.gateway)
        state.backends = Backends(settings.gateway)
        state.inference = Inference(state.backends)
        origins = [o.strip() for o in settings.gateway.cors_origins.split(",") if o.strip()]
        if origins:
            app.add_middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["authorization", "content-type", "x-request-id"],
                expose_headers=["x-request-id", "retry-after", "x-genserve-seed"],
            )
        resources.start_sampler("gateway")
        self.grpc: grpc_server.GrpcServer | None = None
        self.ready = False
        log.info(
            "gateway: authentication %s; services gan=%s translation=%s imagegen=%s",
            "on" if settings.gateway.auth else "OFF (local development)",
            settings.gateway.gan_url,
            settings.gateway.translation_url,
            settings.gateway.imagegen_url,
        )

    @bentoml.on_startup
    async def start(self) -> None:
        self.watcher = asyncio.create_task(state.backends.watch())
        if state.settings.grpc_port:
            self.grpc = await grpc_server.start(
                state.inference,
                state.guard,
                state.settings.grpc_host,
                state.settings.grpc_port,
                limits.max_body_bytes,
            )
        self.ready = True

    @bentoml.on_shutdown
    async def stop(self) -> None:
        if self.grpc is not None:
            await self.grpc.stop()
        self.watcher.cancel()
        await state.backends.close()

    def __is_ready__(self) -> bool:
        return self.ready


Gateway.add_asgi_middleware(FrontDoor)  # type: ignore[attr-defined]
