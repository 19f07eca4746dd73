"""The gateway's pages: the playground at / (plain HTML, CSS and JS from
services/playground/), and the gateway's own 404 for any other path. The API docs are
FastAPI's own (/docs, /openapi.json), guarded by the front door."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from genserve.errors import NotFound

PLAYGROUND = Path(__file__).resolve().parent / "playground"


async def playground() -> FileResponse:
    return FileResponse(PLAYGROUND / "index.html")


async def unknown(path: str) -> Response:
    """Any other path: the gateway's own 404, in the error shape."""
    raise NotFound(f"no route /{path}", field="path")


def add_playground(app: FastAPI) -> None:
    app.add_api_route("/", playground, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=PLAYGROUND), name="static")


def add_not_found(app: FastAPI) -> None:
    """Last of all the routes: everything no other route matched."""
    app.add_api_route(
        "/{path:path}",
        unknown,
        methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
        include_in_schema=False,
    )
