"""One error table for the whole project.

Each class carries its HTTP status, its gRPC status code (by name, so the library
needs no grpc import) and a stable ``code`` string that clients can match on.
Services translate these to the wire once; the library only raises them.
"""

from __future__ import annotations

from typing import Any, ClassVar


class GenserveError(Exception):
    """Base class. ``field`` names the request field at fault, where there is one."""

    http_status: ClassVar[int] = 500
    grpc_code: ClassVar[str] = "INTERNAL"
    code: ClassVar[str] = "internal"
    retry_after_s: float | None = None
    # What a 5xx body says: a fixed sentence per class, never the exception's text.
    public_message: ClassVar[str] = "internal error; quote the request_id when reporting it"

    def __init__(
        self, message: str, *, field: str | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if retry_after_s is not None:  # else the class's own (None, or a default)
            self.retry_after_s = retry_after_s

    @property
    def is_client_error(self) -> bool:
        return 400 <= self.http_status < 500

    def http_headers(self) -> dict[str, str]:
        """Headers an HTTP answer with this error carries, beside the request id and
        Retry-After (``WWW-Authenticate`` on a 401, ``Allow`` on a 405)."""
        return {}

    def to_dict(self, request_id: str | None = None) -> dict[str, Any]:
        """The ``{"error": {...}}`` body. Server errors say only the request id."""
        body: dict[str, Any] = {"code": self.code}
        if self.is_client_error:
            body["message"] = self.message
            if self.field is not None:
                body["field"] = self.field
        else:
            body["message"] = self.public_message
        if request_id is not None:
            body["request_id"] = request_id
        return {"error": body}


class InvalidInput(GenserveError):
    """A request parameter is missing, of the wrong type or out of range."""

    http_status = 400
    grpc_code = "INVALID_ARGUMENT"
    code = "invalid_input"


class PayloadTooLarge(GenserveError):
    http_status = 413
    grpc_code = "RESOURCE_EXHAUSTED"
    code = "payload_too_large"


class NotFound(GenserveError):
    http_status = 404
    grpc_code = "NOT_FOUND"
    code = "not_found"


class Conflict(GenserveError):
    """The request is valid but does not fit the resource's state (a job's result asked
    for before the job has succeeded)."""

    http_status = 409
    grpc_code = "FAILED_PRECONDITION"
    code = "conflict"


class MethodNotAllowed(GenserveError):
    """The path exists, the method does not: ``allow`` lists the methods it has."""

    http_status = 405
    grpc_code = "UNIMPLEMENTED"
    code = "method_not_allowed"

    def __init__(
        self, message: str, *, allow: tuple[str, ...] = (), field: str | None = "method"
    ) -> None:
        super().__init__(message, field=field)
        self.allow = allow

    def http_headers(self) -> dict[str, str]:
        return {"allow": ", ".join(self.allow)} if getattr(self, "allow", ()) else {}


class UnsupportedMediaType(GenserveError):
    http_status = 415
    grpc_code = "INVALID_ARGUMENT"
    code = "unsupported_media_type"


class Overloaded(GenserveError):
    """A bounded queue is full. Answered at once with 503 and Retry-After."""

    http_status = 503
    grpc_code = "UNAVAILABLE"
    code = "overloaded"
    public_message = "the service is at capacity; retry after Retry-After seconds"
    retry_after_s = 1.0


class Unauthenticated(GenserveError):
    """No API key, or one that matches no stored hash."""

    http_status = 401
    grpc_code = "UNAUTHENTICATED"
    code = "unauthenticated"

    def http_headers(self) -> dict[str, str]:
        # RFC 9110: a 401 names the scheme that would be accepted.
        return {"www-authenticate": 'Bearer realm="genserve"'}


class Forbidden(GenserveError):
    """A valid key whose scopes do not cover the route."""

    http_status = 403
    grpc_code = "PERMISSION_DENIED"
    code = "forbidden"


class RateLimited(GenserveError):
    """A key spent its request budget; Retry-After says when the next one fits."""

    http_status = 429
    grpc_code = "RESOURCE_EXHAUSTED"
    code = "rate_limited"
    retry_after_s = 1.0


class TooManyOpenRequests(GenserveError):
    """A caller (a key; a client address with auth off) already has as many requests open
    at the gateway as it may: its own bound, not overload, so 429 with Retry-After."""

    http_status = 429
    grpc_code = "RESOURCE_EXHAUSTED"
    code = "too_many_open_requests"
    retry_after_s = 1.0

    def http_headers(self) -> dict[str, str]:
        # Answered before the body is read: the connection closes rather than wait for
        # the rest of it, so a caller over its bound holds no connection either.
        return {"connection": "close"}


class RequestTimeout(GenserveError):
    """The request's body did not arrive in time (a slow or stalled client). The answer
    closes the connection: what is left of the body is never read."""

    http_status = 408
    grpc_code = "DEADLINE_EXCEEDED"
    code = "request_timeout"

    def http_headers(self) -> dict[str, str]:
        return {"connection": "close"}


class BackendUnavailable(GenserveError):
    """The model service behind a route is down or refused the connection."""

    http_status = 503
    grpc_code = "UNAVAILABLE"
    code = "backend_unavailable"
    public_message = "the model service for this route is unavailable; retry shortly"
    retry_after_s = 1.0


class GatewayTimeout(GenserveError):
    """The model service did not answer within the route's timeout."""

    http_status = 504
    grpc_code = "DEADLINE_EXCEEDED"
    code = "timeout"
    public_message = "the model service did not answer in time"


class QueueTimeout(GenserveError):
    """A request's deadline (its route's timeout) passed before its model call finished;
    if it was still queued, it was dropped and never run."""

    http_status = 504
    grpc_code = "DEADLINE_EXCEEDED"
    code = "deadline_exceeded"
    public_message = "no result within the route's deadline; the request was not run"


class NotReady(GenserveError):
    """The service is starting (its model is loading)."""

    http_status = 503
    grpc_code = "UNAVAILABLE"
    code = "not_ready"
    public_message = "the service is starting; retry shortly"
    retry_after_s = 1.0


class ShuttingDown(NotReady):
    """The service got SIGTERM: it finishes the work it has taken and takes no more."""

    code = "shutting_down"
    public_message = "the service is shutting down; retry shortly (elsewhere if you can)"


class ModelIntegrityError(GenserveError):
    """A model folder does not match its manifest (missing file, changed byte, bad name)."""

    code = "model_integrity"


class ExportError(GenserveError):
    """An exported model does not match its source (parity check failed) or cannot be
    exported safely (no safetensors weights)."""

    code = "export_failed"


class ConfigError(GenserveError):
    """A setting cannot be honoured (unknown execution provider, bad models folder)."""

    code = "config"


def from_wire(
    status: int, body: dict[str, Any], retry_after_s: float | None = None
) -> GenserveError:
    """The error a service answered with, rebuilt from its ``{"error": {...}}`` body."""
    fields = body.get("error") if isinstance(body, dict) else None
    fields = fields if isinstance(fields, dict) else {}
    code, message, field = fields.get("code"), fields.get("message"), fields.get("field")
    kinds: list[type[GenserveError]] = [GenserveError]
    for kind in kinds:
        kinds.extend(kind.__subclasses__())
    found = next((k for k in kinds if k.code == code and k.http_status == status), None)
    if found is None:  # not genserve's body (BentoML's own 429, 503, 504...): by status
        by_status: dict[int, type[GenserveError]] = {
            503: BackendUnavailable,
            504: GatewayTimeout,
        }
        same = [k for k in kinds if k.http_status == status]
        client = InvalidInput if 400 <= status < 500 else GenserveError
        found = by_status.get(status) or (same[0] if same else client)
    error = found.__new__(found)
    GenserveError.__init__(
        error, str(message or code or status), field=field, retry_after_s=retry_after_s
    )
    return error
