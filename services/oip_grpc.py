"""Open Inference Protocol v2 over gRPC (inference.GRPCInferenceService), in the gateway:
a thin front end on the data plane (services/dataplane.py), twin of services/oip_http.py.

BentoML 1.4 services serve HTTP only, so the gateway hosts a grpc.aio server itself, on
the same event loop as its HTTP app (started by a BentoML startup hook). It shares the
gateway's keys, rate limits, service health and protocol code: one process, one set of
limits, no extra hop. The API key travels as ``authorization: Bearer <key>`` metadata,
the request id as ``x-request-id``; errors carry the gRPC code from genserve's error table.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc
import numpy as np

from genserve import kinds
from genserve.errors import GenserveError, InvalidInput
from genserve.metrics import GATEWAY_REJECTIONS, GATEWAY_REQUESTS, GATEWAY_SECONDS
from genserve.protocol import inference_pb2 as pb
from genserve.protocol import inference_pb2_grpc as pb_grpc
from genserve.protocol.tensors import (
    DATATYPES,
    InferRequest,
    Tensor,
    check_shape,
    tensor_from_raw,
    tensor_to_raw,
)
from services.dataplane import SERVER_METADATA, DataPlane, check_version, kind_of
from services.security import Guard, peer_address
from services.wire import request_id, request_id_var, retry_after

log = logging.getLogger("genserve.grpc")
access = logging.getLogger("genserve.access")

# Where each datatype's values sit in InferTensorContents when not sent raw.
_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def _param_value(p: pb.InferParameter) -> Any:
    which = p.WhichOneof("parameter_choice")
    return getattr(p, which) if which else None


def request_from_proto(msg: pb.ModelInferRequest) -> InferRequest:
    """The protocol request, from raw_input_contents (tritonclient's default) or contents."""
    raw = list(msg.raw_input_contents)
    if raw and len(raw) != len(msg.inputs):
        raise InvalidInput("raw_input_contents must hold one entry per input", field="inputs")
    inputs = []
    for i, t in enumerate(msg.inputs):
        where = f"inputs[{i}]"
        if t.datatype not in DATATYPES or t.datatype == "FP16":
            raise InvalidInput(f"unsupported datatype {t.datatype!r}", field=f"{where}.datatype")
        shape = check_shape(list(t.shape), f"{where}.shape")
        if raw:
            data = tensor_from_raw(raw[i], t.datatype, shape, where)
        else:
            values = list(getattr(t.contents, _CONTENTS[t.datatype]))
            if len(values) != int(np.prod(shape)):
                raise InvalidInput(f"contents do not fill shape {shape}", field=f"{where}.contents")
            try:
                data = np.array(values, dtype=DATATYPES[t.datatype]).reshape(shape)
            except (OverflowError, ValueError, TypeError) as exc:
                raise InvalidInput(
                    f"contents do not fit {t.datatype}: {exc}", field=f"{where}.contents"
                ) from None
        params = {k: _param_value(v) for k, v in t.parameters.items()}
        inputs.append(Tensor(t.name, t.datatype, data, params))
    parameters = {k: _param_value(v) for k, v in msg.parameters.items()}
    return InferRequest(
        msg.id or None,
        inputs,
        {o.name: True for o in msg.outputs},
        parameters,
        True,
    )


def response_to_proto(model: str, request_id: str, outputs: list[Tensor]) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(model_name=model, model_version="1", id=request_id)
    for t in outputs:
        response.outputs.add(name=t.name, datatype=t.datatype, shape=t.shape)
        response.raw_output_contents.append(tensor_to_raw(t))
    return response


def _model_scope(name: str) -> str | None:
    kind = kinds.registry().get(name)
    return None if kind is None else kind.scope


class Servicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, dataplane: DataPlane, guard: Guard) -> None:
        self.dataplane = dataplane
        self.guard = guard

    async def _guarded(
        self, name: str, context: Any, scope: str | None, call: Any, limit: bool = True
    ) -> Any:
        metadata = dict(context.invocation_metadata() or ())
        given = str(metadata.get("x-request-id", ""))
        rid = request_id(given)
        token = request_id_var.set(rid)
        started, code, who = time.perf_counter(), "OK", "-"
        try:
            await context.send_initial_metadata((("x-request-id", rid),))
            principal = self.guard.check(
                metadata.get("authorization"), scope, peer_address(context.peer()), limit=limit
            )
            who = principal.name
            with self.guard.slot():
                return await call()
        except GenserveError as exc:
            code = exc.grpc_code
            if exc.http_status == 500:
                log.error("gRPC call failed: %s", exc.message)
            elif exc.http_status in (401, 403, 429):
                GATEWAY_REJECTIONS.labels(exc.code).inc()
            message = exc.message if exc.is_client_error else exc.public_message
            if exc.field:
                message = f"{message} (field: {exc.field})"
            trailers = [("x-request-id", rid)]
            if exc.retry_after_s is not None:
                trailers.append(("retry-after", retry_after(exc.retry_after_s)))
            context.set_trailing_metadata(tuple(trailers))
            await context.abort(grpc.StatusCode[exc.grpc_code], message)
        except Exception:
            code = "INTERNAL"
            log.exception("gRPC call failed")
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error; request_id {rid}")
        finally:
            elapsed = time.perf_counter() - started
            GATEWAY_REQUESTS.labels(f"grpc:{name}", "GRPC", code).inc()
            GATEWAY_SECONDS.labels(f"grpc:{name}").observe(elapsed)
            access.info("grpc %s %s %.1fms caller=%s", name, code, elapsed * 1000, who)
            request_id_var.reset(token)

    async def ServerLive(self, request: Any, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.dataplane.server_ready())

    async def ModelReady(self, request: Any, context: Any) -> pb.ModelReadyResponse:
        async def call() -> pb.ModelReadyResponse:
            check_version(request.version)
            return pb.ModelReadyResponse(ready=self.dataplane.model_ready(request.name))

        return await self._guarded(
            "ModelReady", context, _model_scope(request.name), call, limit=False
        )

    async def ServerMetadata(self, request: Any, context: Any) -> pb.ServerMetadataResponse:
        async def call() -> pb.ServerMetadataResponse:
            return pb.ServerMetadataResponse(
                name=str(SERVER_METADATA["name"]),
                version=str(SERVER_METADATA["version"]),
                extensions=list(SERVER_METADATA["extensions"]),
            )

        return await self._guarded("ServerMetadata", context, None, call, limit=False)

    async def ModelMetadata(self, request: Any, context: Any) -> pb.ModelMetadataResponse:
        async def call() -> pb.ModelMetadataResponse:
            meta = self.dataplane.metadata(request.name, request.version)
            response = pb.ModelMetadataResponse(
                name=meta["name"], versions=meta["versions"], platform=meta["platform"]
            )
            for kind in ("inputs", "outputs"):
                for t in meta[kind]:
                    getattr(response, kind).add(
                        name=t["name"], datatype=t["datatype"], shape=t["shape"]
                    )
            return response

        return await self._guarded(
            "ModelMetadata", context, _model_scope(request.name), call, limit=False
        )

    async def ModelInfer(self, request: Any, context: Any) -> pb.ModelInferResponse:
        async def call() -> pb.ModelInferResponse:
            check_version(request.model_version)
            kind_of(request.model_name)
            parsed = request_from_proto(request)
            outputs = await self.dataplane.infer(request.model_name, parsed)
            return response_to_proto(request.model_name, request.id, outputs)

        return await self._guarded("ModelInfer", context, _model_scope(request.model_name), call)


class GrpcServer:
    def __init__(self, server: grpc.aio.Server, port: int) -> None:
        self.server = server
        self.port = port

    async def stop(self, grace_s: float = 5.0) -> None:
        await self.server.stop(grace_s)


async def start(
    dataplane: DataPlane, guard: Guard, host: str, port: int, max_bytes: int
) -> GrpcServer:
    """Start serving on ``host:port`` on the running event loop."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_bytes),
            ("grpc.max_send_message_length", 256 * 1024 * 1024),
        ]
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(Servicer(dataplane, guard), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind the gRPC port {host}:{port}")
    await server.start()
    log.info("gRPC (inference.GRPCInferenceService) on %s:%d", host, bound)
    return GrpcServer(server, bound)
