"""The HTTP layer every service shares: request ids, body limit, content types, errors.

Errors leave a service in one shape, ``{"error": {"code", "message", "field",
"request_id"}}``: validation 400, too large 413, wrong content type 415, overload
503 with Retry-After. A 5xx body carries only the request id; the traceback goes
to the log under that id.
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genserve.errors import (
    GenserveError,
    InvalidInput,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)

log = logging.getLogger("genserve.http")

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def error_response(exc: GenserveError) -> JSONResponse:
    headers = {REQUEST_ID_HEADER: request_id_var.get()}
    if exc.retry_after_s is not None:
        headers["retry-after"] = str(max(1, round(exc.retry_after_s)))
    return JSONResponse(exc.to_dict(request_id_var.get()), exc.http_status, headers=headers)


class Limits:
    """Mutable so that a service can set them from Settings at start-up, not at import."""

    max_body_bytes: int = 64 * 1024


class WireMiddleware:
    """Request id in and out, JSON-only bodies, and a hard cap on body size.

    The cap is enforced on Content-Length up front and on the bytes actually read,
    so a chunked upload cannot slip past it.
    """

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get(REQUEST_ID_HEADER, "")
        token = request_id_var.set(given if _VALID_REQUEST_ID.match(given) else uuid.uuid4().hex)
        try:
            await self._handle(scope, receive, send, headers)
        finally:
            request_id_var.reset(token)

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]
    ) -> None:
        limit = self.limits.max_body_bytes
        problem: GenserveError | None = None
        if scope["method"] in ("POST", "PUT", "PATCH"):
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            length = headers.get("content-length", "")
            if ctype != "application/json":
                problem = UnsupportedMediaType(
                    f"content-type must be application/json, got {ctype or 'none'!r}",
                    field="content-type",
                )
            elif length.isdigit() and int(length) > limit:
                problem = PayloadTooLarge(
                    f"request body is {length} bytes; the limit is {limit}", field="body"
                )
        if problem is not None:
            await error_response(problem)(scope, receive, send)
            return

        # Read the whole body first (bounded), so an oversized upload is refused whether
        # or not it declared a Content-Length, before the app sees a byte of it.
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                too_large = PayloadTooLarge(
                    f"request body exceeds the limit of {limit} bytes", field="body"
                )
                await error_response(too_large)(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        rid = request_id_var.get().encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                hdrs = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                message["headers"] = [*hdrs, (b"x-request-id", rid)]
            await send(message)

        await self.app(scope, replay, send_with_id)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) if parts else "body"


def create_app(title: str, description: str, limits: Limits) -> FastAPI:
    """A FastAPI app with genserve's error shape and wire middleware installed."""
    app = FastAPI(title=title, description=description, version="0.1.0")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        kind = first.get("type", "")
        field = "body" if kind == "json_invalid" else _field(tuple(first.get("loc", ())))
        if kind == "json_invalid":
            message = "request body is not valid JSON"
        elif kind == "missing" and field == "body":
            message = "request body is missing; send a JSON object"
        else:
            message = f"{field}: {first.get('msg', 'invalid value')}"
        return error_response(InvalidInput(message, field=field))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: NotFound, 405: MethodNotAllowed}.get(exc.status_code, InvalidInput)
        return error_response(kind(str(exc.detail)))

    @app.exception_handler(GenserveError)
    async def _genserve(_: Request, exc: GenserveError) -> JSONResponse:
        if not exc.is_client_error:
            log.error("request %s failed: %s", request_id_var.get(), exc.message)
        return error_response(exc)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("request %s failed", request_id_var.get())
        return error_response(GenserveError("unhandled error"))

    app.add_middleware(WireMiddleware, limits=limits)
    return app
