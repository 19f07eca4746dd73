"""The gateway's OpenAPI document, made to tell the truth.

FastAPI documents what it sees: the routes' schemas and a 422 that never happens here
(validation is 400). This finishes its document from what the gateway does, derived per
operation, never written per path:

- errors, each in genserve's shape (``Error``; under /v2 the protocol's ``ProtocolError``):
  a body: 400, 408, 413, 415; a path parameter: 404 (no such model, job, version); any
  key: 401, 429 (the caller's own bound on open requests, and its rate limit; not on
  health, readiness and metadata, which have neither) and 503 (the gateway's bound,
  its shutdown); a scope: 403 (services/frontdoor.py
  ``access_of``); a call to a model service: 503 and 504; and what
  a kind's route declares beyond those (``Route.statuses``: 409, another success 202);
- the media types a route's success may take by its ``format`` (``Route.media_types``);
- the bearer scheme, on every operation that needs a key;
- links from a route that creates a resource to those that take its id, and the values
  a model's ``{name}`` and ``{version}`` can take;
- the Open Inference Protocol's JSON shapes (its request and response, metadata,
  readiness), which the /v2 routes read and write by hand.

Numbers: every app's document keeps pydantic's exact bounds (services/wire.py
``exact_numbers``), so the seed's maximum reads 18446744073709551615.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Annotated, Any, TypeVar

from fastapi import FastAPI
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from genserve import kinds
from genserve.errors import GenserveError
from genserve.kinds import Route
from genserve.protocol.mapping import VERSION
from genserve.protocol.tensors import DATATYPES, HEADER_LENGTH
from services.frontdoor import access_of

BEARER = "bearer"
_REF = "#/components/schemas/{model}"
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_CALLS_A_SERVICE = "__genserve_calls_a_service__"

F = TypeVar("F", bound=Callable[..., Any])


def calls_a_service(endpoint: F) -> F:
    """Marks a route's endpoint as one that calls a model service: its operation may also
    answer 503 (the service down) and 504 (too slow). Every kind's route does."""
    setattr(endpoint, _CALLS_A_SERVICE, True)
    return endpoint


# -- the Open Inference Protocol v2's JSON (documentation: genserve/protocol parses) ----

Datatype = Annotated[str, WithJsonSchema({"type": "string", "enum": list(DATATYPES)})]
Parameters = dict[str, bool | int | float | str]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class RequestInput(_Open):
    name: str
    shape: list[int] = Field(description="each dimension >= 0")
    datatype: Datatype
    parameters: Parameters | None = Field(
        None, description="binary_data_size: the input's bytes follow the JSON (binary extension)"
    )
    data: list[Any] | None = Field(
        None,
        description="the elements in row-major order, flat or nested; BYTES as strings. "
        "Absent when parameters.binary_data_size is given",
    )


class RequestOutput(_Open):
    name: str
    parameters: Parameters | None = Field(
        None, description="binary_data: true to receive this output as bytes after the JSON"
    )


class InferenceRequest(_Open):
    """An inference request (Open Inference Protocol v2). With the binary tensor extension
    the body is this JSON followed by the inputs' bytes, and the header
    Inference-Header-Content-Length gives the JSON's length."""

    id: str | None = None
    parameters: Parameters | None = Field(
        None, description="the model's options (GET /v2/models/{name} lists its tensors)"
    )
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(_Open):
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: Parameters | None = Field(
        None, description="binary_data_size: the output's bytes follow the JSON"
    )
    data: list[Any] | None = Field(None, description="absent when sent as bytes")


class InferenceResponse(_Open):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


# The JSON shape of one input or output in a model's metadata (a component of the
# document); genserve.protocol.mapping.TensorMetadata is what it is written from.
class TensorMetadataSchema(_Open):
    name: str
    datatype: Datatype
    shape: list[int] = Field(description="-1: any size")
    optional: bool | None = None


class ModelMetadata(_Open):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadataSchema]
    outputs: list[TensorMetadataSchema]


class ServerMetadata(_Open):
    name: str
    version: str
    extensions: list[str]


class ServerLive(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


_PROTOCOL = (
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ServerMetadata,
    ServerLive,
    ServerReady,
    ModelReady,
)


def _ref_to(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return _ref_to(model.__name__)


# What the /v2 routes declare (services/oip_http.py): their own answers; the errors are
# added below like everywhere else.
INFER_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "JSON tensors, or (binary tensor extension) the JSON followed by "
        "the tensors' bytes, with Inference-Header-Content-Length giving the JSON's length",
        "content": {"application/json": {"schema": _ref(InferenceRequest)}},
    },
    "parameters": [
        {
            "name": HEADER_LENGTH,
            "in": "header",
            "required": False,
            "description": "the length of the JSON that binary tensors follow",
            "schema": {"type": "integer", "minimum": 0},
        }
    ],
}
INFER_BODY["requestBody"]["content"]["application/octet-stream"] = _BINARY
INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the outputs: JSON, or the JSON followed by the outputs asked for "
        "as bytes (application/octet-stream; Inference-Header-Content-Length gives the "
        "JSON's length)",
        "content": {"application/json": {"schema": _ref(InferenceResponse)}},
    }
}
INFER_RESPONSES[200]["content"]["application/octet-stream"] = _BINARY


def ok(model: type[BaseModel], not_ready: type[BaseModel] | None = None) -> dict[int | str, Any]:
    """A /v2 route's own answers: ``model`` on 200, and the same shape on 503 for a
    readiness probe that says "not ready"."""
    answers: dict[int | str, Any] = {200: {"model": model}}
    if not_ready is not None:
        answers[503] = {"model": not_ready, "description": "not ready"}
    return answers


# -- errors ------------------------------------------------------------------------------

_WHY = {
    202: "a running job is stopping: status 'cancelling' until its current step ends",
    400: "invalid input; `field` names the field (or `body`: not JSON, not readable)",
    401: "no API key, or not a valid one",
    403: "the key's scopes do not cover this model",
    404: "no such model, job or version; `field` names the path parameter",
    409: "the resource is not in a state for this request (a job's result before it has succeeded)",
    413: "the body is over the gateway's limit (as sent, or as it inflates)",
    415: "a content type or content coding the route does not take",
    408: "the body did not arrive in time (GENSERVE_SERVER_BODY_TIMEOUT_S); the "
    "connection is closed",
    429: "the caller is over its own budget: its rate limit (where the route has one) or "
    "its bound on open requests; Retry-After says when the next request fits",
    503: "the gateway is at its limit of open requests, or the model service is down, "
    "starting or at capacity; Retry-After when it is known",
    504: "the model service did not answer within the route's timeout",
}
_HEADERS = {
    401: {
        "WWW-Authenticate": {
            "description": 'Bearer realm="genserve"',
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "seconds",
            "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    },
    503: {
        "Retry-After": {
            "description": "seconds",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    },
}


def _error_classes() -> list[type[GenserveError]]:
    found, todo = [], [GenserveError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def error_schemas() -> dict[str, dict[str, Any]]:
    """``Error`` ({"error": {code, message, field, request_id}}) and ``ProtocolError``
    (under /v2: "error" is the message, the rest beside it), codes from genserve.errors."""
    codes = sorted({cls.code for cls in _error_classes()})
    code = {"type": "string", "enum": codes, "description": "stable; match on it"}
    field = {"type": "string", "description": "the request field at fault, where there is one"}
    request_id = {"type": "string", "description": "X-Request-ID; quote it when reporting"}
    return {
        "Error": {
            "title": "Error",
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "request_id"],
                    "properties": {
                        "code": code,
                        "message": {"type": "string"},
                        "field": field,
                        "request_id": request_id,
                    },
                }
            },
        },
        "ProtocolError": {
            "title": "ProtocolError",
            "description": "An error under /v2, as the inference protocol's clients read it.",
            "type": "object",
            "required": ["error", "code", "request_id"],
            "properties": {
                "error": {"type": "string", "description": "the message"},
                "code": code,
                "field": field,
                "request_id": request_id,
            },
        },
    }


def _protocol_schemas() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for model in _PROTOCOL:
        schema = model.model_json_schema(ref_template=_REF)
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return out


# -- the document ------------------------------------------------------------------------


def finish(app: FastAPI, doc: dict[str, Any]) -> None:
    """The gateway's document as the gateway answers (an OpenAPIDocument step)."""
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):  # 422: never answered
        schemas.pop(unused, None)
    schemas.update(error_schemas())
    schemas.update(_protocol_schemas())
    components["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "description": "an API key: Authorization: Bearer <key> (genserve keys new)",
        }
    }
    declared = {(r.path, r.method): r for k in kinds.kinds() for r in k.routes}
    for route in iter_route_contexts(app.routes):  # an included router's routes too
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        path = route.path_format or ""
        item = doc.get("paths", {}).get(path, {})
        for method in sorted(route.methods or ()):
            op = item.get(method.lower())
            if op is not None:
                _operation(op, route, declared.get((path, method)))
    for creates in declared.values():
        _links(doc, creates, declared.values())


def _links(doc: dict[str, Any], creates: Route, routes: Iterable[Route]) -> None:
    """OpenAPI links from a route that creates a resource (its answer has an ``id``) to
    the routes under its path that take that id (POST /v1/jobs -> /v1/jobs/{job_id}...),
    for clients and for schemathesis's stateful tests."""
    if creates.method != "POST" or creates.response is None:
        return
    if "id" not in creates.response.model_fields:
        return
    paths = doc.get("paths", {})
    answer = paths.get(creates.path, {}).get("post", {}).get("responses", {})
    answer = answer.get(str(creates.status_code))
    if answer is None:
        return
    for route in routes:
        if not route.path.startswith(creates.path + "/{") or len(route.params) != 1:
            continue
        op = paths.get(route.path, {}).get(route.method.lower(), {})
        if "operationId" in op:
            name = f"{route.method.lower()}{route.path.removeprefix(creates.path)}"
            answer.setdefault("links", {})[name] = {
                "operationId": op["operationId"],
                "parameters": {route.params[0]: "$response.body#/id"},
            }


# Path parameters whose every value is known: a model's name, its version.
_PATH_VALUES: dict[str, Callable[[], list[str]]] = {
    "name": kinds.names,
    "version": lambda: [VERSION],
}


def _example(template: str) -> str:
    """A concrete path for a template, to ask the front door what it needs: a model's
    name where the template has one, "x" for other parameters."""
    name = next(iter(kinds.names()), "x")
    path = template.replace("{name}", name)
    while "{" in path:
        head, _, tail = path.partition("{")
        path = head + "x" + tail.partition("}")[2]
    return path


def _operation(op: dict[str, Any], route: RouteContext, declared: Route | None) -> None:
    path = route.path_format or ""
    responses: dict[str, Any] = op.setdefault("responses", {})
    responses.pop("422", None)
    rule = access_of(_example(path))
    for parameter in op.get("parameters", []):
        if parameter.get("in") == "path" and parameter.get("name") in _PATH_VALUES:
            parameter["schema"]["enum"] = _PATH_VALUES[parameter["name"]]()
    statuses: set[int] = set()
    if "requestBody" in op:
        statuses |= {400, 408, 413, 415}
    if route.param_convertors:
        statuses.add(404)
    if not rule.public:
        op["security"] = [{BEARER: []}]
        statuses |= {401, 503}
        if rule.scope is not None:
            statuses.add(403)
        if rule.limited:  # health, readiness, metadata: neither bound nor rate limit
            statuses.add(429)  # the caller's bound on open requests, and its rate limit
    if declared is not None or getattr(route.endpoint, _CALLS_A_SERVICE, False):
        statuses |= {503, 504}
    success = str(route.status_code or 200)
    if declared is not None:
        statuses |= set(declared.statuses)
        content = responses.setdefault(success, {}).setdefault("content", {})
        for media_type in declared.media_types:
            content[media_type] = _BINARY
    error = _ref_to("ProtocolError" if path.startswith("/v2") else "Error")
    for status in sorted(statuses):
        key = str(status)
        if status < 300:  # another success: the same body as the route's own
            same = responses.get(success, {})
            responses[key] = {**same, "description": _why(status)}
            continue
        entry = responses.setdefault(key, {"description": _why(status)})
        own = entry.get("content", {}).get("application/json", {}).get("schema")
        schema = error if own is None else {"anyOf": [own, error]}
        entry["content"] = {"application/json": {"schema": schema}}
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
    op["responses"] = dict(sorted(responses.items()))


def _why(status: int) -> str:
    return _WHY.get(status) or HTTPStatus(status).phrase
