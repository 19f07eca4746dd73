"""The gateway: one front door over HTTP and gRPC, the model services behind it by URL.

GET  /                          the playground (services/pages.py)
/v1/...                         the REST API, one set of routes per model kind
                                (services/rest.py, from genserve.kinds), validated here with
                                the kinds' own schemas and passed on with the request id
GET  /v1/models                 the models and whether their services are ready
/v2/...                         Open Inference Protocol v2 over HTTP (services/oip_http.py)
gRPC (GENSERVE_GATEWAY_GRPC_PORT) the same protocol (services/oip_grpc.py), on the same
                                data plane (services/dataplane.py)
/docs, /openapi.json            the API, for callers with a key (or from loopback, auth off)
/metrics                        Prometheus, for keys with the "metrics" scope (or loopback)

Every request passes the front door first (services/frontdoor.py): a request id, the API
key and its scope, the key's rate limit (429) and a bound on open requests (503 with
Retry-After). This file only wires the parts together.
"""

from __future__ import annotations

import asyncio
import gc
import logging

import bentoml
from fastapi.middleware.cors import CORSMiddleware

from genserve import kinds, resources
from genserve.config import Settings
from services import oip_grpc, oip_http, openapi, pages, rest
from services.base import drain_on_sigterm, service_config
from services.frontdoor import FrontDoor, limits, state
from services.wire import add_openapi_step, create_app

log = logging.getLogger("genserve.gateway")

app = create_app(
    "genserve",
    "One front door to genserve's models. REST under /v1, the Open Inference Protocol v2 "
    "under /v2 (and over gRPC). Authenticate with `Authorization: Bearer <key>`. Errors: "
    '{"error": {"code", "message", "field", "request_id"}}; 400 invalid input, 401 no or '
    "bad key (WWW-Authenticate), 403 key out of scope, 404 no such path, model or job, "
    "405 a method the path does not have (Allow lists its methods), 409 a job's result "
    "before it succeeded, 413 body too large, 415 not JSON, 429 rate limited, 503 "
    "overloaded or a model service down (with Retry-After), 504 a model service too slow. "
    "Each operation lists the statuses it can answer.",
    limits,
)
app.include_router(oip_http.router)
pages.add_playground(app)
add_openapi_step(app, openapi.finish)  # statuses, media types, keys, the protocol's JSON


@bentoml.service(**service_config("gateway", 600))
@bentoml.asgi_app(app, path="/")
class Gateway:
    def __init__(self) -> None:
        settings = Settings()
        limits.max_body_bytes = settings.server.max_body_bytes
        state.configure(app, settings.gateway)
        # The model kinds' routes come from the registry, read at start-up; the catch-all
        # 404 goes last.
        rest.add_routes(app)
        pages.add_not_found(app)
        app.description = (
            (app.description or "")
            + " Models: "
            + ", ".join(f"{k.name} ({k.title})" for k in kinds.kinds())
        )
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
        self.grpc: oip_grpc.GrpcServer | None = None
        self.ready = False
        # SIGTERM: not ready at once (HTTP and gRPC), new requests 503 with Retry-After at
        # once, the open ones (HTTP and gRPC alike hold a place) finish, then it stops.
        drain_on_sigterm(
            "gateway", settings.server.drain_s, lambda: state.guard.in_flight > 0, self._drain
        )
        log.info(
            "gateway: authentication %s; services %s",
            "on" if settings.gateway.auth else "OFF (local development)",
            " ".join(f"{b.name}={b.url}" for b in state.backends.by_name.values()),
        )

    @bentoml.on_startup
    async def start(self) -> None:
        self.watcher = asyncio.create_task(state.backends.watch())
        if state.settings.grpc_port:
            self.grpc = await oip_grpc.start(
                state.dataplane,
                state.guard,
                state.settings.grpc_host,
                state.settings.grpc_port,
                limits.max_body_bytes,
            )
        gc.freeze()  # start-up's objects out of the collector's way (services/base.py)
        self.ready = True

    @bentoml.on_shutdown
    async def stop(self) -> None:
        if self.grpc is not None:
            await self.grpc.stop()
        self.watcher.cancel()
        await state.backends.close()

    def _drain(self) -> None:
        self.ready = False
        # (gRPC health watchers hear NOT_SERVING at the next poll of the data plane)
        state.guard.draining = state.dataplane.draining = True

    def __is_ready__(self) -> bool:
        return self.ready


Gateway.add_asgi_middleware(FrontDoor)  # type: ignore[attr-defined]
