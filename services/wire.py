"""The HTTP layer every service shares: request ids, body limit, content types, errors.

Errors leave a service in one shape, ``{"error": {"code", "message", "field",
"request_id"}}``: validation 400, a body that does not arrive in time 408, too large 413,
wrong content type 415, overload 503 with Retry-After. A 5xx body carries only the
request id; the traceback goes to the log under that id.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import re
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import (
    get_definitions,
    get_fields_from_routes,
    get_flat_models_from_fields,
    get_model_name_map,
)
from fastapi.responses import JSONResponse, Response
from fastapi.routing import iter_route_contexts
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genserve.errors import (
    GenserveError,
    InvalidInput,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
    from_wire,
)
from genserve.metrics import exposition

T = TypeVar("T")
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
    headers = {**exc.http_headers(), REQUEST_ID_HEADER: request_id_var.get()}
    if exc.retry_after_s is not None:
        headers["retry-after"] = retry_after(exc.retry_after_s)
    body = exc.to_dict(request_id_var.get())
    if path == "/v2" or path.startswith("/v2/"):
        fields = body["error"]
        body = {**fields, "error": fields["message"]}
        del body["message"]
    return JSONResponse(body, exc.http_status, headers=headers)


def _methods(routes: Iterable[BaseRoute], scope: Scope) -> set[str] | None:
    found: set[str] | None = None
    for context in iter_route_contexts(list(routes)):  # FastAPI's included routers too
        route = context.original_route
        if isinstance(route, Mount):
            match, child = route.matches(scope)
            if match == Match.NONE:
                continue
            if isinstance(route.app, StaticFiles):
                inner: set[str] | None = {"GET", "HEAD"}
            else:
                inner = _methods(route.routes, {**scope, **child})
            if inner is not None:
                found = (found or set()) | inner
            continue
        methods = context.methods
        if methods is None:
            continue  # a route that takes every method is a catch-all, not a resource
        if context.matches(scope)[0] != Match.NONE:
            found = (found or set()) | set(methods)
    return found


def methods_at(scope: Scope) -> set[str] | None:
    """The methods the app's routes take at the request's path; None when no route has
    this path (a route that takes any method, the gateway's catch-all, does not count)."""
    router = getattr(scope.get("app"), "router", None)
    return _methods(getattr(router, "routes", ()), scope)


def method_not_allowed(scope: Scope, allowed: Iterable[str]) -> MethodNotAllowed:
    """405 for a path that exists under other methods, which ``Allow`` lists."""
    allow = tuple(sorted(allowed))
    method = printable(str(scope.get("method", "")))
    return MethodNotAllowed(
        f"{method} is not allowed here; this path takes {', '.join(allow)}", allow=allow
    )


class Limits:
    """Mutable so that a service can set them from Settings at start-up, not at import."""

    max_body_bytes: int = 64 * 1024
    # How long a body may take: all of it, from the headers on, and the longest wait for
    # its next piece (GENSERVE_SERVER_BODY_TIMEOUT_S, _BODY_IDLE_TIMEOUT_S); None: not yet
    # read from the settings (``timeouts()`` reads them once, at start-up).
    body_timeout_s: float | None = None
    body_idle_timeout_s: float | None = None
    # Paths whose bodies may also be raw bytes (the inference protocol's binary tensors).
    raw_body_paths: re.Pattern[str] | None = None
    access_log: bool = True  # the gateway logs its own, with the caller's name

    def timeouts(self) -> tuple[float, float]:
        """(whole body, idle) in seconds, from ServerSettings unless set already. Called
        when the middleware is built (start-up), so a bad value stops the server then."""
        if self.body_timeout_s is None or self.body_idle_timeout_s is None:
            from genserve.config import ServerSettings

            server = ServerSettings()
            if self.body_timeout_s is None:
                self.body_timeout_s = server.body_timeout_s
            if self.body_idle_timeout_s is None:
                self.body_idle_timeout_s = server.body_idle_timeout_s
        return self.body_timeout_s, self.body_idle_timeout_s


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


# Request content codings (Content-Encoding) and their zlib window bits; "deflate" is the
# zlib format in HTTP (RFC 9110), and a raw deflate stream is read too, as browsers do.
CONTENT_CODINGS = {"gzip": 31, "x-gzip": 31, "deflate": 15}
_CODING_HEADERS = (b"content-encoding", b"content-length")


class Inflater:
    """A compressed body inflated as it arrives, never past the limit: a zip bomb stops at
    limit + 1 bytes of output (zlib's max_length), whatever it would grow to."""

    def __init__(self, coding: str, limit: int) -> None:
        self.coding, self.limit = coding, limit
        self.out = bytearray()
        self.head = b""  # the first bytes, until the zlib header can be told from raw deflate
        self.z: Any = None

    def _corrupt(self, why: str) -> InvalidInput:
        return InvalidInput(f"request body is not valid {self.coding} data: {why}", field="body")

    def feed(self, data: bytes) -> None:
        if self.z is None:
            self.head += data
            if len(self.head) < 2:
                return
            data, self.head = self.head, b""
            wbits = CONTENT_CODINGS[self.coding]
            if wbits == 15 and not (data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0):
                wbits = -15  # no zlib header: raw deflate
            self.z = zlib.decompressobj(wbits)
        while data:
            if self.z.eof:  # another gzip member may follow; anything else is refused
                if CONTENT_CODINGS[self.coding] != 31:
                    raise self._corrupt("bytes follow the end of the stream")
                self.z = zlib.decompressobj(31)
            try:
                self.out += self.z.decompress(data, self.limit + 1 - len(self.out))
            except zlib.error as exc:
                raise self._corrupt(str(exc)) from None
            if len(self.out) > self.limit:
                raise PayloadTooLarge(
                    f"request body inflates past the limit of {self.limit} bytes", field="body"
                )
            data = self.z.unused_data  # bytes after this member (max_length left none unread)

    def finish(self) -> bytes:
        if self.z is None and not self.head:
            return b""  # no body at all
        if self.z is None or not self.z.eof:
            raise self._corrupt("the stream is cut short")
        return bytes(self.out)


def inflater(headers: dict[str, str], limit: int) -> Inflater | None:
    """The body's decoder from its Content-Encoding: None for identity; 415 for a coding
    not served (or more than one)."""
    given = headers.get("content-encoding", "")
    codings = [c.strip() for c in given.lower().split(",")]
    codings = [c for c in codings if c not in ("", "identity")]
    if not codings:
        return None
    if len(codings) > 1 or codings[0] not in CONTENT_CODINGS:
        raise UnsupportedMediaType(
            f"content-encoding must be gzip, deflate or identity, got {printable(given)!r}",
            field="content-encoding",
        )
    return Inflater(codings[0], limit)


async def read_body(
    scope: Scope, receive: Receive, headers: dict[str, str], limits: Limits
) -> bytes | None:
    """A request's whole body, refused before the app sees a byte of it when its content
    type or coding is not accepted (415) or it is over the limit (413), whether or not it
    declared a Content-Length (a chunked upload is counted as it is read). A gzip or
    deflate body is inflated as it is read, and the limit holds for what it inflates to
    (413), a corrupt stream is 400. A body that has not all arrived within
    ``limits.body_timeout_s`` of the headers, or whose next piece is ``body_idle_timeout_s``
    late, is 408 (a slow client holds no place for longer). None: the client left."""
    limit = limits.max_body_bytes
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    length = headers.get("content-length", "")
    if not accepts(limits, scope["path"], ctype):
        raise UnsupportedMediaType(
            f"content-type must be application/json, got {ctype or 'none'!r}",
            field="content-type",
        )
    decoder = inflater(headers, limit)
    if length.isascii() and length.isdigit() and (len(length) > 18 or int(length) > limit):
        raise PayloadTooLarge(f"request body is {length} bytes; the limit is {limit}", field="body")
    whole_s, idle_s = limits.timeouts()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + whole_s
    body, received, more = bytearray(), 0, True
    while more:
        wait = min(idle_s, deadline - loop.time())
        try:
            if wait <= 0:
                raise TimeoutError
            async with asyncio.timeout(wait):
                message = await receive()
        except TimeoutError:
            late = (
                f"the request body did not arrive within {whole_s:g} s"
                if wait < idle_s
                else f"no more of the request body came for {idle_s:g} s"
            )
            raise RequestTimeout(f"{late} ({received} bytes read)", field="body") from None
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes", field="body")
        if decoder is None:
            body += chunk
        else:
            decoder.feed(chunk)
    return bytes(body) if decoder is None else decoder.finish()


async def client_gone(send: Send) -> None:
    """End the exchange of a client that left before its body was in. Nothing reaches it
    (uvicorn drops what is sent after a disconnect), but the response is over, so nothing
    outside waits for one: BentoML's request timeout (``traffic.timeout``, 600 s at the
    gateway) otherwise kept the request's task, and a graceful shutdown, waiting that long.
    499 is the access log's "client closed request", as nginx writes it."""
    await send({"type": "http.response.start", "status": 499, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def unless_gone(receive: Receive, work: Awaitable[T]) -> T | None:
    """``work``'s result, or None when the client disconnects first: then ``work`` is
    cancelled, so a request whose caller left is not run for nobody (a batch queue drops
    it, an upstream call is closed). Call it once the whole body has been read: the next
    thing ``receive`` gives is then the disconnect. ``work`` runs in the calling task; one
    small task watches the connection."""
    task = asyncio.current_task()
    assert task is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        gone = True
        task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if not gone:
            raise
        task.uncancel()  # cancelled for the disconnect alone: the request ends here
        return None
    finally:
        watcher.cancel()


def metrics_page() -> Response:
    """The Prometheus exposition of this process (genserve.metrics.exposition)."""
    return Response(exposition(), 200, media_type=CONTENT_TYPE_LATEST)


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
        limits.timeouts()  # the body timeouts, read at start-up (GENSERVE_SERVER_*)

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
                # The path and the method come first: a request no route takes (an
                # unknown path, a wrong method) gets the app's 404 or 405, not 413/415.
                # Looked up only here, off the path of every good request. A body that
                # did not arrive is 408 wherever it was going: the connection closes.
                if isinstance(exc, RequestTimeout) or takes(scope):
                    await error_response(exc, scope["path"])(scope, receive, send)
                    return
                read = b""
            if read is None:
                await client_gone(send)
                return
            body = read
            if "content-encoding" in headers:  # the app sees the inflated body as sent plain
                scope["headers"] = [
                    *(h for h in scope["headers"] if h[0].lower() not in _CODING_HEADERS),
                    (b"content-length", str(len(body)).encode()),
                ]
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
        if exc.status_code == 405:  # Starlette's Allow names only the first route it found
            allowed = methods_at(request.scope)
            if allowed is None:
                given = (exc.headers or {}).get("Allow", "")
                allowed = {m.strip() for m in given.split(",") if m.strip()}
            return error_response(method_not_allowed(request.scope, allowed), request.url.path)
        kind = {404: NotFound}.get(exc.status_code, InvalidInput)
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
    app.openapi = OpenAPIDocument(app)  # type: ignore[method-assign]
    return app


def takes(scope: Scope) -> bool:
    """Whether a route of the app takes this request's method at its path (True when the
    app's routes cannot be read: then the body is read as before)."""
    if getattr(scope.get("app"), "router", None) is None:
        return True
    return scope["method"] in (methods_at(scope) or ())


OpenAPIStep = Callable[[FastAPI, dict[str, Any]], None]


class OpenAPIDocument:
    """An app's ``openapi()``: FastAPI's document, finished once per build by ``steps``
    (every app: exact numbers; the gateway adds its own, services/openapi.py)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.steps: list[OpenAPIStep] = [exact_numbers]
        self._finished: dict[str, Any] | None = None

    def __call__(self) -> dict[str, Any]:
        doc = FastAPI.openapi(self.app)  # built again only when the routes change
        if doc is not self._finished:
            for step in self.steps:
                step(self.app, doc)
            self._finished = doc
        return doc


def add_openapi_step(app: FastAPI, step: OpenAPIStep) -> None:
    cast(OpenAPIDocument, app.openapi).steps.append(step)


_NUMBER_KEYWORDS = frozenset(
    {"multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"}
)


def exact_numbers(app: FastAPI, doc: dict[str, Any]) -> None:
    """Bounds as pydantic wrote them. FastAPI passes the document through its OpenAPI
    models, whose ``maximum`` (and the other numeric keywords) are floats: 2**64-1 came
    out as 1.8446744073709552e+19, which is 2**64. Each schema FastAPI put in
    ``components`` gets back the exact number it was built from, by the same calls."""
    fields = get_fields_from_routes(list(app.routes))
    names = get_model_name_map(get_flat_models_from_fields(fields, known_models=set()))
    _, exact = get_definitions(
        fields=fields,
        model_name_map=names,
        separate_input_output_schemas=app.separate_input_output_schemas,
    )
    schemas = doc.get("components", {}).get("schemas", {})
    for name, schema in schemas.items():
        if name in exact:
            _restore(schema, exact[name])


def _restore(coerced: Any, exact: Any) -> None:
    if isinstance(coerced, dict) and isinstance(exact, dict):
        for key, value in coerced.items():
            original = exact.get(key)
            if key in _NUMBER_KEYWORDS and isinstance(value, float) and type(original) is int:
                if float(original) == value:
                    coerced[key] = original
            else:
                _restore(value, original)
    elif isinstance(coerced, list) and isinstance(exact, list):
        for a, b in zip(coerced, exact, strict=False):
            _restore(a, b)
