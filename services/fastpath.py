"""A model service's POST routes, served without the HTTP stack's per-request machinery.

A model call is cheap next to what a request costs on its way through BentoML's Starlette
app and FastAPI: the mount's routing, FastAPI's dependency solving (the service instance
is a dependency), the request model validated from parsed JSON, the returned model
validated again and encoded through ``jsonable_encoder``. Under load the service's event
loop, not the model, was the limit (py-spy, BENCHMARKS.md). ``FastPath`` is the service's
ASGI middleware (BentoML's ``add_asgi_middleware``, inside BentoML's own metrics and
timeout layers) and serves every route of the app that takes one JSON body and nothing
else: the body is read and checked by the same ``WireMiddleware`` (request id, 413, 415,
408, the access log), validated from its bytes by the route's model (the same 400 naming
the field), the handler runs, and its model is written with pydantic's own encoder
(``response_model_exclude_none`` and the status code as the route declares them; a
``Response`` goes out as it is). Any other request goes on to FastAPI, whose declarations
of the same routes stay the OpenAPI contract.

A caller that disconnects while its request waits is dropped: the handler is cancelled,
so its rows leave the batch queue unrun (``services.wire.unless_gone``). ``/metrics`` is
rendered here too, on the event loop rather than in a thread (see ``FastPath._metrics``).
"""

from __future__ import annotations

import inspect
import logging
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import bentoml
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from genserve.config import ServerSettings
from genserve.errors import GenserveError, InvalidInput
from genserve.metrics import IN_PROGRESS
from services.wire import (
    Limits,
    WireMiddleware,
    client_gone,
    error_response,
    invalid_input,
    method_not_allowed,
    metrics_page,
    request_id_var,
    unless_gone,
)

log = logging.getLogger("genserve.http")


@dataclass(frozen=True)
class BodyRoute:
    """A POST route whose handler takes the service and one JSON body model."""

    handler: Callable[..., Awaitable[Any]]
    argument: str  # the body parameter's name
    model: type[BaseModel]
    status_code: int
    exclude_none: bool

    def respond(self, result: Any) -> Response:
        if isinstance(result, Response):
            return result
        if isinstance(result, BaseModel):
            body = result.model_dump_json(exclude_none=self.exclude_none)
            return Response(body, self.status_code, media_type="application/json")
        raise TypeError(f"a body route returned {type(result).__name__}")


def body_routes(app: FastAPI, prefix: str) -> dict[str, BodyRoute]:
    """The app's POST routes that take exactly one JSON body model (besides ``self``),
    by their full path; routes with path parameters, queries or headers are left out."""
    found: dict[str, BodyRoute] = {}
    for context in iter_route_contexts(list(app.routes)):  # included routers too
        route = context.original_route
        if not isinstance(route, APIRoute) or context.methods != {"POST"}:
            continue
        if route.param_convertors or route.dependencies:
            continue
        hints = typing.get_type_hints(route.endpoint)
        params = list(inspect.signature(route.endpoint).parameters)[1:]  # after self
        if len(params) != 1:
            continue
        model = hints.get(params[0])
        if not (inspect.isclass(model) and issubclass(model, BaseModel)):
            continue
        found[prefix + route.path] = BodyRoute(
            route.endpoint,
            params[0],
            model,
            route.status_code or 200,
            route.response_model_exclude_none,
        )
    return found


def serve_fast(service: Any, api: FastAPI, limits: Limits, prefix: str = "/v1") -> None:
    """Put ``FastPath`` in front of a BentoML service's app ``api`` (mounted at ``prefix``)."""
    service.add_asgi_middleware(FastPath, api=api, prefix=prefix, limits=limits, name=service.name)


class FastPath:
    """Serves ``app``'s body routes (mounted at ``prefix``) directly; the rest goes on."""

    def __init__(
        self, app: ASGIApp, *, api: FastAPI, prefix: str, limits: Limits, name: str
    ) -> None:
        self.app = app
        self.in_progress = IN_PROGRESS.labels(name)
        on = ServerSettings().fast_path
        self.routes = body_routes(api, prefix) if on else {}
        self.wired = WireMiddleware(self._serve, limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with self.in_progress.track_inprogress():
            if scope["method"] == "POST" and scope["path"] in self.routes:
                await self.wired(scope, receive, send)
            elif scope["path"] == "/metrics":
                await self._metrics(scope, receive, send)
            else:
                await self.app(scope, receive, send)

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        """/metrics (BentoML's own is off, ``services/base.py``), rendered on the event
        loop: BentoML rendered it in a worker thread, which under load waited for the GIL
        at every file it read (the loop and the batch thread hold it in turn, 5 ms at a
        time), and scrapes of a saturated service took up to 0.5 s."""
        if scope["method"] not in ("GET", "HEAD"):
            error = method_not_allowed(scope, ("GET", "HEAD"))
            await error_response(error, scope["path"])(scope, receive, send)
            return
        await metrics_page()(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        route = self.routes[path]
        body = (await receive()).get("body", b"")  # WireMiddleware hands it over whole
        try:
            if not body.strip():
                raise InvalidInput("request body is missing; send a JSON object", field="body")
            try:
                request = route.model.model_validate_json(body)
            except ValidationError as exc:
                raise invalid_input(exc.errors()) from None
            call = route.handler(bentoml.get_current_service(), **{route.argument: request})
            result = await unless_gone(receive, call)
        except GenserveError as exc:
            if not exc.is_client_error:
                log.error("request %s failed: %s", request_id_var.get(), exc.message)
            await error_response(exc, path)(scope, receive, send)
            return
        if result is None:
            await client_gone(send)
            return
        await route.respond(result)(scope, receive, send)
