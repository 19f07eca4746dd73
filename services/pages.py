"""The gateway's pages: the playground at / (plain HTML, CSS and JS from
services/playground/), /metrics, and the gateway's own 404 for any other path (405 with Allow for
a path that exists under other methods). The API docs are FastAPI's own (/docs,
/openapi.json), guarded by the front door."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from genserve.errors import NotFound
from services.wire import method_not_allowed, methods_at, metrics_page

PLAYGROUND = Path(__file__).resolve().parent / "playground"
# BentoML's own routes, served around this app for GET (and HEAD): any other method
# reaches the catch-all below, which answers 405 for them too.
OUTER = frozenset({"/livez", "/healthz", "/readyz", "/schema.json"})


async def playground() -> FileResponse:
    return FileResponse(PLAYGROUND / "index.html")


async def unknown(scope: Scope, receive: Receive, send: Send) -> None:
    """Any request no route took: 405 with Allow when the path exists under other methods,
    else the gateway's own 404, in the error shape. An ASGI app, not a function of a
    request: Starlette gives a function route GET alone, this one takes every method."""
    allowed = methods_at(scope) or set()
    if scope["path"] in OUTER:
        allowed |= {"GET", "HEAD"}
    if allowed:
        raise method_not_allowed(scope, allowed)
    raise NotFound(f"no route {scope['path']}", field="path")


async def metrics(request: Request) -> Response:
    """/metrics (the front door has checked the caller's scope)."""
    return metrics_page()


def add_playground(app: FastAPI) -> None:
    app.add_api_route("/", playground, methods=["GET"], include_in_schema=False)
    app.add_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=PLAYGROUND), name="static")


def add_not_found(app: FastAPI) -> None:
    """Last of all the routes: everything no other route matched, whatever its method
    (OPTIONS included: without CORS, or without a preflight's headers, it is a method no
    path here has, so 405)."""
    app.router.add_route("/{path:path}", cast(Any, _Unknown()), include_in_schema=False)


class _Unknown:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await unknown(scope, receive, send)
