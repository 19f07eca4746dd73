"""Open Inference Protocol v2 over HTTP: a thin front end on the data plane
(services/dataplane.py), twin of the gRPC server (services/oip_grpc.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from genserve.errors import InvalidInput
from genserve.protocol.tensors import HEADER_LENGTH, encode_response, parse_request
from services.dataplane import SERVER_METADATA, check_version
from services.frontdoor import state

router = APIRouter(prefix="/v2", tags=["v2"])


@router.get("")
async def server_metadata() -> dict[str, Any]:
    return SERVER_METADATA


@router.get("/health/live")
async def server_live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready")
async def server_ready() -> JSONResponse:
    ready = state.dataplane.server_ready()
    return JSONResponse({"ready": ready}, 200 if ready else 503)


@router.get("/models/{name}")
@router.get("/models/{name}/versions/{version}")
async def model_metadata(name: str, version: str | None = None) -> dict[str, Any]:
    return state.dataplane.metadata(name, version)


@router.get("/models/{name}/ready")
@router.get("/models/{name}/versions/{version}/ready")
async def model_ready(name: str, version: str | None = None) -> JSONResponse:
    check_version(version)
    ready = state.dataplane.model_ready(name)
    return JSONResponse({"name": name, "ready": ready}, 200 if ready else 503)


@router.post("/models/{name}/infer")
@router.post("/models/{name}/versions/{version}/infer")
async def infer(name: str, request: Request, version: str | None = None) -> Response:
    """Inference with JSON tensors, or JSON followed by binary tensors (the header
    Inference-Header-Content-Length gives the JSON's length)."""
    check_version(version)
    header = request.headers.get(HEADER_LENGTH)
    if header is not None and not header.isdigit():
        raise InvalidInput(
            "Inference-Header-Content-Length must be an integer", field=HEADER_LENGTH
        )
    parsed = parse_request(await request.body(), int(header) if header is not None else None)
    outputs = await state.dataplane.infer(name, parsed)
    body, json_length = encode_response(name, "1", parsed, outputs)
    if json_length is None:
        return Response(body, 200, media_type="application/json")
    return Response(
        body, 200, {HEADER_LENGTH: str(json_length)}, media_type="application/octet-stream"
    )
