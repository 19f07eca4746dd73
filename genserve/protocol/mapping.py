"""How a model kind appears in the Open Inference Protocol v2: its tensors, and how one
inference maps onto REST calls to the kind's service (and their answers back onto
tensors).

Each kind declares its own ``ModelSpec`` in its folder (``genserve/<kind>/api.py``); this
module holds only what they share. Library code: plain values in and out; the gateway's
data plane makes the calls.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from genserve import images
from genserve.errors import InvalidInput
from genserve.protocol.tensors import InferRequest, Tensor

VERSION = "1"
PLATFORM = "genserve_onnxruntime"


@dataclass(frozen=True)
class TensorMetadata:
    """One tensor of a model's metadata (the protocol's ``$metadata_tensor``)."""

    name: str
    datatype: str
    shape: tuple[int, ...]  # -1 = any size
    optional: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "datatype": self.datatype, "shape": self.shape}
        if self.optional:
            out["optional"] = True
        return out


@dataclass(frozen=True)
class Call:
    """One REST call to the model's service: a path under its /v1 and a JSON body."""

    path: str
    body: dict[str, Any]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    inputs: tuple[TensorMetadata, ...]
    outputs: tuple[TensorMetadata, ...]
    parameters: dict[str, type | tuple[type, ...]]  # request parameter -> accepted types
    plan: Callable[[InferRequest], list[Call]]
    collect: Callable[[list[Call], list[dict[str, Any]]], list[Tensor]]
    # REST field (as a service names it in an error) -> the protocol's name for it
    fields: dict[str, str] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [VERSION],
            "platform": PLATFORM,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }

    def wire_field(self, rest_field: str | None) -> str | None:
        """The protocol's name for a REST field a service complained about."""
        if rest_field is None:
            return None
        head, _, rest = rest_field.partition(".")
        mapped = self.fields.get(head)
        if mapped is None:
            return rest_field
        return f"{mapped}[{rest}]" if rest else mapped

    def check(self, request: InferRequest) -> None:
        """Inputs and parameters are known and of the documented types."""
        known = {t.name: t for t in self.inputs}
        for i, tensor in enumerate(request.inputs):
            spec = known.get(tensor.name)
            if spec is None:
                raise InvalidInput(
                    f"model {self.name} has no input {tensor.name!r}; inputs: {sorted(known)}",
                    field=f"inputs[{i}].name",
                )
            _check_datatype(spec, tensor, f"inputs[{i}]")
        for spec in self.inputs:
            if not spec.optional and spec.name not in {t.name for t in request.inputs}:
                raise InvalidInput(f"missing input {spec.name!r}", field=f"inputs.{spec.name}")
        names = {t.name for t in self.outputs}
        for name in request.outputs:
            if name not in names:
                raise InvalidInput(
                    f"model {self.name} has no output {name!r}; outputs: {sorted(names)}",
                    field="outputs",
                )
        for key, value in request.parameters.items():
            if key in ("binary_data_output",):
                continue
            accepted = self.parameters.get(key)
            if accepted is None:
                raise InvalidInput(
                    f"unknown parameter {key!r}; {self.name} takes {sorted(self.parameters)}",
                    field=f"parameters.{key}",
                )
            # One rule for JSON and gRPC values: bool is an int to Python, never to us.
            types = accepted if isinstance(accepted, tuple) else (accepted,)
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise InvalidInput(
                    f"parameter {key!r} has the wrong type", field=f"parameters.{key}"
                )


_INTEGER_TYPES = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")


def _check_datatype(spec: TensorMetadata, tensor: Tensor, where: str) -> None:
    ok = tensor.datatype == spec.datatype or (
        spec.datatype in ("INT32", "INT64") and tensor.datatype in _INTEGER_TYPES
    )
    if not ok:
        raise InvalidInput(
            f"{spec.name} must be {spec.datatype}, got {tensor.datatype}", field=f"{where}.datatype"
        )
    if tensor.data.ndim != 1 and not (tensor.data.ndim == 2 and tensor.data.shape[1] == 1):
        raise InvalidInput(f"{spec.name} must have shape [n] or [n, 1]", field=f"{where}.shape")
    if tensor.data.size == 0:
        raise InvalidInput(f"{spec.name} is empty", field=f"{where}.shape")


def texts(tensor: Tensor) -> list[str]:
    out = []
    for i, raw in enumerate(tensor.data.reshape(-1)):
        try:
            out.append(bytes(raw).decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidInput("text is not UTF-8", field=f"inputs.{tensor.name}[{i}]") from None
    return out


def options(request: InferRequest, names: tuple[str, ...]) -> dict[str, Any]:
    return {k: request.parameters[k] for k in names if k in request.parameters}


def bytes_tensor(name: str, values: list[str]) -> Tensor:
    return Tensor(name, "BYTES", np.array([v.encode("utf-8") for v in values], dtype=np.object_))


def image_tensor(encoded: list[str]) -> Tensor:
    pixels = np.stack([images.decode_rgb(base64.b64decode(e)) for e in encoded])
    return Tensor("IMAGE", "UINT8", pixels)
