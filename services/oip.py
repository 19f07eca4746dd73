"""Open Inference Protocol v2 inference, shared by the gateway's HTTP routes and its
gRPC server: tensors in, REST calls to the model service, tensors out.

Each call the protocol request maps to is validated with the REST schema first, so a
bad tensor or parameter is refused before any service sees it, naming the protocol's
field (``inputs.TEXT[3]``, ``parameters.steps``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import BaseModel, ValidationError

from genserve.errors import InvalidInput, NotFound
from genserve.protocol.models import MODELS, Call, ModelSpec
from genserve.protocol.tensors import InferRequest, Tensor
from services.backends import Backends
from services.schemas import ImageRequest, SampleRequest, TranslateRequest
from services.web import REQUEST_ID_HEADER, error_from_body, request_id_var

SCHEMAS: dict[str, type[BaseModel]] = {
    "translation": TranslateRequest,
    "imagegen": ImageRequest,
    "gan": SampleRequest,
}
SERVER_METADATA: dict[str, Any] = {
    "name": "genserve",
    "version": "0.1.0",
    "extensions": ["binary_tensor_data"],
}


def spec(model: str) -> ModelSpec:
    found = MODELS.get(model)
    if found is None:
        raise NotFound(f"no model named {model!r}; models: {sorted(MODELS)}", field="model_name")
    return found


def check_version(version: str | None) -> None:
    if version not in (None, "", "1"):
        raise NotFound(f"no version {version!r}; the only version is 1", field="model_version")


class Inference:
    def __init__(self, backends: Backends) -> None:
        self.backends = backends

    def model_ready(self, model: str) -> bool:
        spec(model)
        return self.backends.get(model).ready

    def server_ready(self) -> bool:
        return all(b.ready for b in self.backends.by_name.values())

    async def infer(self, model: str, request: InferRequest) -> list[Tensor]:
        model_spec = spec(model)
        model_spec.check(request)
        calls = model_spec.plan(request)
        for call in calls:
            _validate(model_spec, SCHEMAS[model], call)
        tasks = [asyncio.ensure_future(self._call(model_spec, c)) for c in calls]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:  # one failed (or the caller left): stop the others' work
                task.cancel()
            raise
        tensors = model_spec.collect(calls, list(results))
        return [t for t in tensors if not request.outputs or t.name in request.outputs]

    async def _call(self, model_spec: ModelSpec, call: Call) -> dict[str, Any]:
        response = await self.backends.request(
            model_spec.name,
            "POST",
            "/v1" + call.path,
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


def _validate(model_spec: ModelSpec, schema: type[BaseModel], call: Call) -> None:
    try:
        schema.model_validate(call.body, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        rest_field = ".".join(str(p) for p in first.get("loc", ())) or None
        raise InvalidInput(
            f"{model_spec.wire_field(rest_field)}: {first.get('msg', 'invalid value')}",
            field=model_spec.wire_field(rest_field),
        ) from None
