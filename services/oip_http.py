"""Open Inference Protocol v2 over HTTP: a thin front end on the data plane
(services/dataplane.py), twin of the gRPC server (services/oip_grpc.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from genserve.protocol.tensors import (
    HEADER_LENGTH,
    encode_response,
    parse_header_length,
    parse_request,
)
from services.dataplane import SERVER_METADATA, check_version
from services.frontdoor import state
from services.openapi import (
    INFER_BODY,
    INFER_RESPONSES,
    ModelMetadata,
    ModelReady,
    ServerLive,
    ServerMetadata,
    ServerReady,
    calls_a_service,
    ok,
)

router = APIRouter(prefix="/v2", tags=["v2"])


# response_model=None: the answers are documented (services/openapi.py), not filtered.
@router.get("", response_model=None, responses=ok(ServerMetadata))
async def server_metadata() -> dict[str, Any]:
    return SERVER_METADATA


@router.get("/health/live", response_model=None, responses=ok(ServerLive))
async def server_live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready", responses=ok(ServerReady, ServerReady))
async def server_ready() -> JSONResponse:
    ready = state.dataplane.server_ready()
    return JSONResponse({"ready": ready}, 200 if ready else 503)


@router.get("/models/{name}", response_model=None, responses=ok(ModelMetadata))
@router.get("/models/{name}/versions/{version}", response_model=None, responses=ok(ModelMetadata))
async def model_metadata(name: str, version: str | None = None) -> dict[str, Any]:
    return state.dataplane.metadata(name, version)


@router.get("/models/{name}/ready", responses=ok(ModelReady, ModelReady))
@router.get("/models/{name}/versions/{version}/ready", responses=ok(ModelReady, ModelReady))
async def model_ready(name: str, version: str | None = None) -> JSONResponse:
    check_version(version)
    ready = state.dataplane.model_ready(name)
    return JSONResponse({"name": name, "ready": ready}, 200 if ready else 503)


@router.post("/models/{name}/infer", openapi_extra=INFER_BODY, responses=INFER_RESPONSES)
@router.post(
    "/models/{name}/versions/{version}/infer",
    openapi_extra=INFER_BODY,
    responses=INFER_RESPONSES,
)
@calls_a_service
async def infer(name: str, request: Request, version: str | None = None) -> Response:
    """Inference with JSON tensors, or JSON followed by binary tensors (the header
    Inference-Header-Content-Length gives the JSON's length)."""
    check_version(version)
    header_length = parse_header_length(request.headers.get(HEADER_LENGTH))
    parsed = parse_request(await request.body(), header_length)
    outputs = await state.dataplane.infer(name, parsed)
    body, json_length = encode_response(name, "1", parsed, outputs)
    if json_length is None:
        return Response(body, 200, media_type="application/json")
    return Response(
        body, 200, {HEADER_LENGTH: str(json_length)}, media_type="application/octet-stream"
    )
