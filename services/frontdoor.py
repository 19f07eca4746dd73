"""The gateway's front door: every HTTP request passes here first.

It gives the request an id, checks the API key and its scope, spends one token of the
caller's rate limit (429) and takes one of the open-request slots (503 with Retry-After)
and one of the caller's own (429 with Retry-After), then records the route's metrics and
access line. A body that does not arrive in time is 408 (services/wire.py read_body), and
both slots are given back at once. Health, readiness and metadata (not rate limited)
take no slot: never 429 or 503 overloaded, only 503 shutting_down while draining. The
REST POST routes are passed
through from here (read, validated with the route's schema, forwarded as the caller's
bytes); everything else goes on to the gateway's app.

What each path needs is derived from the model kinds (genserve.kinds): a kind's routes
need its scope, and so do its /v1/models/<kind> and /v2/models/<kind> paths.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from pydantic import ValidationError
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genserve import kinds
from genserve.config import GatewaySettings
from genserve.errors import GenserveError, NotFound
from genserve.kinds import ModelKind, Route
from genserve.metrics import GATEWAY_REJECTIONS, GATEWAY_REQUESTS, GATEWAY_SECONDS, IN_PROGRESS
from services.backends import PASSED_BACK, Backends
from services.dataplane import DataPlane
from services.security import Guard
from services.wire import (
    REQUEST_ID_HEADER,
    Limits,
    client_gone,
    error_response,
    invalid_input,
    printable,
    read_body,
    request_id,
    request_id_var,
    unless_gone,
)

access = logging.getLogger("genserve.access")

QUIET = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})  # probes and scrapes
PUBLIC = frozenset({"/", "/livez", "/readyz", "/healthz", "/v2/health/live", "/v2/health/ready"})
DOCS = frozenset(
    {"/docs", "/redoc", "/openapi.json", "/docs.json", "/schema.json", "/docs/oauth2-redirect"}
)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
_MODEL_PATH = re.compile(r"/v[12]/models/([^/]+)")  # a model's own routes need its scope
# a model's OIP readiness and metadata: its scope, but no rate limit
_PROBE_PATH = re.compile(r"/v2/models/[^/]+(/versions/[^/]+)?(/ready)?")


class State:
    """What the gateway builds at start-up (settings, keys, backends, the data plane and
    the tables derived from the model kinds); the front door and the routes read it."""

    app: FastAPI
    settings: GatewaySettings
    guard: Guard
    backends: Backends
    dataplane: DataPlane
    # route prefix ("/v1/jobs") -> the scope it needs
    scopes: dict[str, str]
    # POST path -> its kind and route, for the routes passed through at the front door
    pass_through: dict[str, tuple[ModelKind, Route]]

    def configure(self, app: FastAPI, settings: GatewaySettings) -> None:
        self.app = app
        self.settings = settings
        self.guard = Guard(settings)
        self.backends = Backends(settings)
        self.dataplane = DataPlane(self.backends)
        self.scopes = {r.prefix: k.scope for k in kinds.kinds() for r in k.routes}
        self.pass_through = {
            r.path: (k, r)
            for k in kinds.kinds()
            for r in k.routes
            if r.method == "POST" and r.request is not None and not r.params
        }

    def timeout(self, kind: ModelKind, route: Route) -> float:
        """A route's timeout: the control timeout for short calls, else the kind's."""
        if route.control:
            return self.settings.timeout_jobs_s
        return self.backends.get(kind.name).timeout_s


state = State()
limits = Limits()
limits.access_log = False
limits.raw_body_paths = re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/infer$")


@dataclass(frozen=True)
class Access:
    """What a path needs: no key at all (public), a key with ``scope`` (None: any valid
    key), whether it spends a token of the caller's rate limit, and whether, with
    authentication off, it is served only to this machine (metrics and docs)."""

    public: bool = False
    scope: str | None = None
    limited: bool = True
    local_only: bool = False


PUBLIC_ACCESS = Access(public=True, limited=False)


def access_of(path: str) -> Access:
    """The access rule for a path. Health, readiness and metadata are never rate limited,
    on HTTP as on gRPC (clients poll them, and a 429 would read as "not ready")."""
    if path in PUBLIC or path.startswith("/static/"):
        return PUBLIC_ACCESS
    if path == "/metrics":
        return Access(scope="metrics", limited=False, local_only=True)
    if path in DOCS:
        return Access(limited=False, local_only=True)
    if path == "/v2":
        return Access(limited=False)
    for prefix, scope in state.scopes.items():
        if path == prefix or path.startswith(prefix + "/"):
            return Access(scope=scope)
    match = _MODEL_PATH.match(path)
    kind = kinds.registry().get(match.group(1)) if match else None
    if kind is not None:
        return Access(scope=kind.scope, limited=not _PROBE_PATH.fullmatch(path))
    return Access()  # any valid key; then 404 for what does not exist


def route_of(app: FastAPI, scope: Scope) -> str:
    """The route template a request matched (``/v1/jobs/{job_id}``): a bounded label."""
    for context in iter_route_contexts(list(app.router.routes)):  # included routers too
        if context.matches(scope)[0] == Match.FULL:
            path = context.path or ""
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
        limits.timeouts()  # the body timeouts, read at start-up (GENSERVE_SERVER_*)

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
            with IN_PROGRESS.labels("gateway").track_inprogress():
                await self._handle(scope, receive, send_with_id, headers, who)
        finally:
            path = scope["path"]
            if path not in QUIET:
                elapsed = time.perf_counter() - started
                route = route_of(state.app, scope)
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
        rule = access_of(path)
        preflight = method == "OPTIONS" and "access-control-request-method" in headers
        if rule.public or (preflight and state.settings.cors_origins):
            await self.app(scope, receive, send)
            return
        try:
            client = (scope.get("client") or ("-", 0))[0]
            if not state.guard.auth and rule.local_only:
                # Auth off (local development): metrics and docs only from this machine.
                if not _is_loopback(scope.get("client")):
                    raise NotFound("not found", field="path")
                principal = state.guard.anonymous(client)
            else:
                principal = state.guard.check(
                    headers.get("authorization"), rule.scope, client, limit=rule.limited
                )
                who[0] = principal.name
            # Health, readiness and metadata take no open-request place: never 429 or
            # 503 overloaded (read as "not ready"), only shutting_down while draining.
            slot = state.guard.slot(principal.bucket_id, bounded=rule.limited)
        except GenserveError as exc:
            GATEWAY_REJECTIONS.labels(exc.code).inc()
            await error_response(exc, path)(scope, receive, send)
            return
        with slot:
            if method == "POST" and path in state.pass_through and not state.settings.cors_origins:
                await pass_through(scope, receive, send, headers)
            else:
                await self.app(scope, receive, send)


# The POST routes of the REST API go straight from the front door to their service:
# the body is read (415, 413 as everywhere), validated with the route's schema (the same
# 400 naming the field) and forwarded as the caller's bytes; the service's answer goes
# back as it is. Skipping FastAPI's routing and request handling takes about 0.3 to 1 ms
# off every call on this machine (BENCHMARKS.md). FastAPI's declarations of the same
# routes (services/rest.py) stay the OpenAPI contract, and serve them when CORS is on
# (its headers come from FastAPI's CORS middleware).
async def pass_through(scope: Scope, receive: Receive, send: Send, headers: dict[str, str]) -> None:
    path = scope["path"]
    kind, route = state.pass_through[path]
    try:
        body = await read_body(scope, receive, headers, limits)
        if body is None:
            await client_gone(send)
            return
        try:
            assert route.request is not None  # pass-through routes have a body schema
            route.request.model_validate_json(body, strict=True)
        except ValidationError as exc:
            raise invalid_input(exc.errors()) from None
        call = state.backends.request(
            kind.name,
            "POST",
            path,
            content=body,
            headers={"content-type": "application/json", REQUEST_ID_HEADER: request_id_var.get()},
            timeout_s=state.timeout(kind, route),
        )
        # A caller that leaves closes the call to the service too: its work is dropped there.
        upstream = await unless_gone(receive, call)
    except GenserveError as exc:
        await error_response(exc, path)(scope, receive, send)
        return
    if upstream is None:
        await client_gone(send)
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
