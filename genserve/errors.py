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

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    @property
    def is_client_error(self) -> bool:
        return 400 <= self.http_status < 500

    def to_dict(self, request_id: str | None = None) -> dict[str, Any]:
        """The ``{"error": {...}}`` body. Server errors say only the request id."""
        body: dict[str, Any] = {"code": self.code}
        if self.is_client_error:
            body["message"] = self.message
            if self.field is not None:
                body["field"] = self.field
        else:
            body["message"] = "internal error; quote the request_id when reporting it"
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


class MethodNotAllowed(GenserveError):
    http_status = 405
    grpc_code = "UNIMPLEMENTED"
    code = "method_not_allowed"


class UnsupportedMediaType(GenserveError):
    http_status = 415
    grpc_code = "INVALID_ARGUMENT"
    code = "unsupported_media_type"


class Overloaded(GenserveError):
    """A bounded queue is full. Answered at once with 503 and Retry-After."""

    http_status = 503
    grpc_code = "UNAVAILABLE"
    code = "overloaded"

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotReady(GenserveError):
    http_status = 503
    grpc_code = "UNAVAILABLE"
    code = "not_ready"


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
