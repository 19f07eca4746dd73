"""Open Inference Protocol v2 over gRPC (inference.GRPCInferenceService), in the gateway:
a thin front end on the data plane (services/dataplane.py), twin of services/oip_http.py.

BentoML 1.4 services serve HTTP only, so the gateway hosts a grpc.aio server itself, on
the same event loop as its HTTP app (started by a BentoML startup hook). It shares the
gateway's keys, rate limits, service health and protocol code: one process, one set of
limits, no extra hop. The API key travels as ``authorization: Bearer <key>`` metadata,
the request id as ``x-request-id``; errors carry the gRPC code from genserve's error table.

The same port serves ``grpc.health.v1.Health`` (for ``""`` and the inference service:
SERVING while every model service is ready, as /v2/health/ready) and server reflection
(v1alpha, what grpcurl asks), both without a key and never rate limited: probes carry none.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import numpy as np
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

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
        # FP16 has no typed contents field: raw only, as Triton
        if t.datatype not in DATATYPES or (t.datatype == "FP16" and not raw):
            raise InvalidInput(f"unsupported datatype {t.datatype!r}", field=f"{where}.datatype")
        shape = check_shape(list(t.shape), f"{where}.shape")
        if raw:
            if t.HasField("contents"):
                raise InvalidInput(
                    "an input is in raw_input_contents or in contents, not both",
                    field=f"{where}.contents",
                )
            data = tensor_from_raw(raw[i], t.datatype, shape, where)
        else:
            # Typed by protobuf (bool_contents holds bools, int64_contents integers), so
            # no value can be of another kind; only its range is checked.
            values = list(getattr(t.contents, _CONTENTS[t.datatype]))
            if len(values) != math.prod(shape):
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
            # The whole message has arrived before a handler runs: a slow sender holds no
            # slot. The slots are the HTTP side's too (all, and this caller's own);
            # readiness and metadata (not limited) take none, as over HTTP.
            with self.guard.slot(principal.bucket_id, bounded=limit):
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
        except asyncio.CancelledError:
            code = "CANCELLED"  # the client left or its deadline passed: not served
            raise
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


INFERENCE_SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class Health(health_pb2_grpc.HealthServicer):
    """grpc.health.v1.Health for ``""`` (the server) and the inference service: SERVING
    while ``ready()`` (the data plane's server readiness), NOT_SERVING otherwise and from
    shutdown on. Check reads it afresh; Watch streams each change, which ``update()`` (run
    every ``POLL_S``) finds. grpcio-health-checking's own servicer is not used: it is set by
    hand, and its Watch stops hearing changes when another watcher of the service leaves."""

    SERVICES = ("", INFERENCE_SERVICE)
    POLL_S = 0.25

    def __init__(self, ready: Callable[[], bool]) -> None:
        self.ready = ready
        self.serving = False
        self.stopping = False
        self.changed = asyncio.Event()  # set, and replaced, on every change

    def update(self) -> None:
        serving = not self.stopping and self.ready()
        if serving != self.serving:
            self.serving = serving
            self.changed.set()
            self.changed = asyncio.Event()

    def status(self, service: str) -> Any:
        if service not in self.SERVICES:
            return _UNKNOWN
        return _SERVING if self.serving else _NOT_SERVING

    async def Check(self, request: Any, context: Any) -> health_pb2.HealthCheckResponse:
        self.update()
        if request.service not in self.SERVICES:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=self.status(request.service))

    async def Watch(
        self, request: Any, context: Any
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        self.update()
        last = None
        while True:
            changed = self.changed
            status = self.status(request.service)
            if status != last:
                yield health_pb2.HealthCheckResponse(status=status)
                last = status
            await changed.wait()

    async def poll(self) -> None:
        while True:
            self.update()
            await asyncio.sleep(self.POLL_S)


class Malformed:
    """A request whose bytes are not its message (truncated, a string that is not UTF-8):
    answered INVALID_ARGUMENT, not grpc's UNKNOWN naming the parser's exception."""

    def __init__(self, message_type: Any) -> None:
        self.message = f"the request is not a valid {message_type.DESCRIPTOR.full_name}"


def _lenient(message_type: Any) -> Callable[[bytes], Any]:
    def parse(raw: bytes) -> Any:
        try:
            return message_type.FromString(raw)
        except DecodeError:
            return Malformed(message_type)

    return parse


def _refusing_malformed(method: Any, streaming: bool) -> Any:
    if streaming:

        async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
            if isinstance(request, Malformed):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
            async for answer in method(request, context):
                yield answer

        return stream

    async def unary(request: Any, context: Any) -> Any:
        if isinstance(request, Malformed):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        answer = method(request, context)  # a base class's stub (UNIMPLEMENTED) is not async
        return await answer if inspect.isawaitable(answer) else answer

    return unary


def add_service(
    server: grpc.aio.Server, service: ServiceDescriptor, messages: Any, servicer: Any
) -> None:
    """A servicer's calls, as the generated ``add_..._to_server`` adds them, except that
    a request that does not parse is INVALID_ARGUMENT (unary and server-streaming calls)."""
    handlers = {}
    for method in service.methods:
        assert not method.client_streaming, method.full_name
        request = getattr(messages, method.input_type.name)
        response = getattr(messages, method.output_type.name)
        make = (
            grpc.unary_stream_rpc_method_handler
            if method.server_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[method.name] = make(
            _refusing_malformed(getattr(servicer, method.name), method.server_streaming),
            request_deserializer=_lenient(request),
            response_serializer=response.SerializeToString,
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )
    server.add_registered_method_handlers(service.full_name, handlers)


class GrpcServer:
    def __init__(self, server: grpc.aio.Server, port: int, health: Health) -> None:
        self.server = server
        self.port = port
        self.health = health
        self.poller = asyncio.create_task(health.poll())

    async def stop(self, grace_s: float = 5.0) -> None:
        self.health.stopping = True
        self.health.update()  # NOT_SERVING to every watcher before the port closes
        self.poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.poller
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
    inference = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    add_service(server, inference, pb, Servicer(dataplane, guard))
    health = Health(dataplane.server_ready)
    add_service(server, health_pb2.DESCRIPTOR.services_by_name["Health"], health_pb2, health)
    services = (INFERENCE_SERVICE, HEALTH_SERVICE, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(services, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind the gRPC port {host}:{port}")
    await server.start()
    log.info("gRPC (%s) on %s:%d", ", ".join(services), host, bound)
    return GrpcServer(server, bound, health)
