"""The HTTP layer every service shares: request ids, body limit, content types, errors.

Errors leave a service in one shape, ``{"error": {"code", "message", "field",
"request_id"}}``: validation 400, too large 413, wrong content type 415, overload
503 with Retry-After. A 5xx body carries only the request id; the traceback goes
to the log under that id.
"""

from __future__ import annotations

import contextvars
import logging
import math
import re
import time
import uuid
from collections.abc import Sequence
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
    from_wire,
)

log = logging.getLogger("genserve.http")
access = logging.getLogger("genserve.access")

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def request_id(given: str) -> str:
    """The caller's X-Request-ID if it is a sane token, else a fresh one."""
    return given if _VALID_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def printable(text: str) -> str:
    """Text safe for one log line: control characters escaped."""
    return text if text.isprintable() else ascii(text)


def retry_after(seconds: float) -> str:
    """Whole seconds, rounded up: a client that waits that long finds room."""
    return str(max(1, math.ceil(seconds)))


def error_response(exc: GenserveError, path: str = "") -> JSONResponse:
    """The error as JSON. Under /v2 the inference protocol wants ``"error"`` to be the
    message string (tritonclient reads it so); code, field and request id sit beside it."""
    headers = {REQUEST_ID_HEADER: request_id_var.get()}
    if exc.retry_after_s is not None:
        headers["retry-after"] = retry_after(exc.retry_after_s)
    body = exc.to_dict(request_id_var.get())
    if path == "/v2" or path.startswith("/v2/"):
        fields = body["error"]
        body = {**fields, "error": fields["message"]}
        del body["message"]
    return JSONResponse(body, exc.http_status, headers=headers)


class Limits:
    """Mutable so that a service can set them from Settings at start-up, not at import."""

    max_body_bytes: int = 64 * 1024
    # Paths whose bodies may also be raw bytes (the inference protocol's binary tensors).
    raw_body_paths: re.Pattern[str] | None = None
    access_log: bool = True  # the gateway logs its own, with the caller's name


# Never accepted anywhere: nothing on the network is ever unpickled.
PICKLE_TYPES = frozenset(
    {"application/python-pickle", "application/x-pickle", "application/pickle", "text/x-pickle"}
)


def accepts(limits: Limits, path: str, ctype: str) -> bool:
    if ctype in PICKLE_TYPES:
        return False
    if limits.raw_body_paths is not None and limits.raw_body_paths.search(path):
        return ctype in ("", "application/json", "application/octet-stream")
    return ctype == "application/json"


def error_from_body(response: Any) -> GenserveError:
    """The error a service sent back (its status, headers and JSON), as a GenserveError."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    retry = response.headers.get("retry-after")
    return from_wire(response.status_code, body, float(retry) if retry else None)


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every log record, as ``%(request_id)s``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def configure_logging() -> None:
    """genserve's log lines, each with the request id it belongs to."""
    logger = logging.getLogger("genserve")
    if any(isinstance(f, RequestIdFilter) for h in logger.handlers for f in h.filters):
        return
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [request_id=%(request_id)s] %(message)s"
        )
    )
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


async def read_body(
    scope: Scope, receive: Receive, headers: dict[str, str], limits: Limits
) -> bytes | None:
    """A request's whole body, refused before the app sees a byte of it when its content
    type is not accepted (415) or it is over the limit (413), whether or not it declared
    a Content-Length (a chunked upload is counted as it is read). None: the client left."""
    limit = limits.max_body_bytes
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    length = headers.get("content-length", "")
    if not accepts(limits, scope["path"], ctype):
        raise UnsupportedMediaType(
            f"content-type must be application/json, got {ctype or 'none'!r}",
            field="content-type",
        )
    if length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"request body is {length} bytes; the limit is {limit}", field="body")
    body, more = bytearray(), True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes", field="body")
    return bytes(body)


def invalid_input(errors: Sequence[Any]) -> InvalidInput:
    """Pydantic's first validation error as genserve's 400, naming the field."""
    first = errors[0]
    kind = first.get("type", "")
    field = "body" if kind == "json_invalid" else _field(tuple(first.get("loc", ())))
    if kind == "json_invalid":
        message = "request body is not valid JSON"
    elif kind == "missing" and field == "body":
        message = "request body is missing; send a JSON object"
    else:
        message = f"{field}: {first.get('msg', 'invalid value')}"
    return InvalidInput(message, field=field)


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
        token = request_id_var.set(request_id(given))
        try:
            await self._handle(scope, receive, send, headers)
        finally:
            request_id_var.reset(token)

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]
    ) -> None:
        body = b""
        if scope["method"] in ("POST", "PUT", "PATCH"):
            try:
                read = await read_body(scope, receive, headers, self.limits)
            except GenserveError as exc:
                await error_response(exc, scope["path"])(scope, receive, send)
                return
            if read is None:
                return  # the client went away
            body = read
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        rid = request_id_var.get().encode()
        started, status = time.perf_counter(), [0]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                hdrs = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                message["headers"] = [*hdrs, (b"x-request-id", rid)]
            await send(message)

        try:
            await self.app(scope, replay, send_with_id)
        except Exception:
            # Here, not in FastAPI's outermost handler, so the 500 and its log line keep
            # the request id (the context variable is reset once this middleware returns).
            log.exception("request %s failed", request_id_var.get())
            if status[0]:
                raise  # the response has begun; nothing sane can be sent any more
            await error_response(GenserveError("unhandled error"), scope["path"])(
                scope, replay, send_with_id
            )
        finally:
            if self.limits.access_log:
                ms = (time.perf_counter() - started) * 1000
                path = printable(scope["path"])
                access.info("%s %s %s %.1fms", scope["method"], path, status[0], ms)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) if parts else "body"


def create_app(title: str, description: str, limits: Limits) -> FastAPI:
    """A FastAPI app with genserve's error shape and wire middleware installed."""
    configure_logging()
    app = FastAPI(title=title, description=description, version="0.1.0")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(invalid_input(exc.errors()), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: NotFound, 405: MethodNotAllowed}.get(exc.status_code, InvalidInput)
        return error_response(kind(str(exc.detail)), request.url.path)

    @app.exception_handler(GenserveError)
    async def _genserve(request: Request, exc: GenserveError) -> JSONResponse:
        if not exc.is_client_error:
            log.error("request %s failed: %s", request_id_var.get(), exc.message)
        return error_response(exc, request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request %s failed", request_id_var.get())
        return error_response(GenserveError("unhandled error"), request.url.path)

    app.add_middleware(WireMiddleware, limits=limits)
    return app
