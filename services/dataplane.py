"""The Open Inference Protocol v2 data plane, shared by its two front ends: the gateway's
HTTP routes (services/oip_http.py) and its gRPC server (services/oip_grpc.py), as
KServe's REST and gRPC servers share one DataPlane.

A protocol request becomes REST calls to the kind's service (its ``ModelKind.oip``
mapping). Each call is validated first with the schema of the route it goes to, so a bad
tensor or parameter is refused before any service sees it, naming the protocol's field
(``inputs.TEXT[3]``, ``parameters.steps``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import ValidationError

from genserve import kinds
from genserve.errors import InvalidInput, NotFound
from genserve.kinds import ModelKind
from genserve.protocol.mapping import Call, ModelSpec
from genserve.protocol.tensors import InferRequest, Tensor
from services.backends import Backends
from services.wire import REQUEST_ID_HEADER, error_from_body, request_id_var

SERVER_METADATA: dict[str, Any] = {
    "name": "genserve",
    "version": "0.1.0",
    "extensions": ["binary_tensor_data"],
}


def kind_of(model: str) -> ModelKind:
    return kinds.get(model, field="model_name")


def check_version(version: str | None) -> None:
    if version not in (None, "", "1"):
        raise NotFound(f"no version {version!r}; the only version is 1", field="model_version")


class DataPlane:
    def __init__(self, backends: Backends) -> None:
        self.backends = backends
        self.draining = False  # SIGTERM: nothing is ready any more, over HTTP and gRPC

    def model_ready(self, model: str) -> bool:
        kind_of(model)
        return not self.draining and self.backends.get(model).ready

    def server_ready(self) -> bool:
        return not self.draining and all(b.ready for b in self.backends.by_name.values())

    def metadata(self, model: str, version: str | None = None) -> dict[str, Any]:
        check_version(version)
        return kind_of(model).oip.metadata()

    async def infer(self, model: str, request: InferRequest) -> list[Tensor]:
        kind = kind_of(model)
        kind.oip.check(request)
        calls = kind.oip.plan(request)
        for call in calls:
            _validate(kind, call)
        tasks = [asyncio.ensure_future(self._call(kind.oip, c)) for c in calls]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:  # one failed (or the caller left): stop the others' work
                task.cancel()
            raise
        tensors = kind.oip.collect(calls, list(results))
        return [t for t in tensors if not request.outputs or t.name in request.outputs]

    async def _call(self, model_spec: ModelSpec, call: Call) -> dict[str, Any]:
        response = await self.backends.request(
            model_spec.name,
            "POST",
            call.path,
            content=json.dumps(call.body).encode(),
            headers={"content-type": "application/json", REQUEST_ID_HEADER: request_id_var.get()},
        )
        if response.status_code != 200:
            error = error_from_body(response)
            if error.is_client_error:
                error.field = model_spec.wire_field(error.field)
            raise error
        result: dict[str, Any] = response.json()
        return result


def _validate(kind: ModelKind, call: Call) -> None:
    schema = kind.route("POST", call.path).request
    if schema is None:
        return
    try:
        schema.model_validate(call.body, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        rest_field = ".".join(str(p) for p in first.get("loc", ())) or None
        raise InvalidInput(
            f"{kind.oip.wire_field(rest_field)}: {first.get('msg', 'invalid value')}",
            field=kind.oip.wire_field(rest_field),
        ) from None
