"""Open Inference Protocol v2 tensors over HTTP, with the binary tensor extension.

An inference request is a JSON object, optionally followed by raw tensor bytes (the
binary extension tritonclient uses by default): the JSON's length is then given by the
``Inference-Header-Content-Length`` header, and each input that travels in binary says
how many bytes it takes in ``parameters.binary_data_size``, in input order. BYTES
elements are encoded as a 4-byte little-endian length followed by the bytes. Responses
follow the same rules for the outputs the client asked to receive in binary.

Library code: bad input raises ``InvalidInput`` naming the field (``inputs[1].shape``).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from genserve.errors import InvalidInput

HEADER_LENGTH = "inference-header-content-length"
MAX_ELEMENTS = 1 << 24
DATATYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}


@dataclass
class Tensor:
    name: str
    datatype: str
    data: np.ndarray  # BYTES: an object array of bytes
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> list[int]:
        return list(self.data.shape)


@dataclass
class InferRequest:
    id: str | None
    inputs: list[Tensor]
    outputs: dict[str, bool]  # requested output -> binary; empty = all, JSON
    parameters: dict[str, Any]
    binary_outputs: bool = False  # request-level binary_data_output

    def input(self, name: str) -> Tensor:
        for t in self.inputs:
            if t.name == name:
                return t
        raise InvalidInput(f"missing input tensor {name!r}", field=f"inputs.{name}")


def datatype_of(array: np.ndarray) -> str:
    """The protocol datatype of a numpy array (object arrays are BYTES)."""
    for name, dtype in DATATYPES.items():
        if array.dtype == np.dtype(dtype):
            return name
    raise ValueError(f"no protocol datatype for {array.dtype}")


def serialize_bytes(array: np.ndarray) -> bytes:
    """BYTES elements, row-major: a 4-byte little-endian length, then the bytes."""
    out = bytearray()
    for item in array.reshape(-1):
        raw = item.encode("utf-8") if isinstance(item, str) else bytes(item)
        out += struct.pack("<I", len(raw)) + raw
    return bytes(out)


def deserialize_bytes(raw: bytes, count: int, where: str) -> np.ndarray:
    items, offset = [], 0
    for _ in range(count):
        if offset + 4 > len(raw):
            raise InvalidInput("BYTES tensor data is truncated", field=where)
        (n,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + n > len(raw):
            raise InvalidInput("BYTES tensor data is truncated", field=where)
        items.append(raw[offset : offset + n])
        offset += n
    if offset != len(raw):
        raise InvalidInput("BYTES tensor data is longer than its shape", field=where)
    return np.array(items, dtype=np.object_)


def tensor_from_raw(raw: bytes, datatype: str, shape: list[int], where: str) -> np.ndarray:
    """A tensor from its raw bytes (binary extension, gRPC raw contents), little-endian."""
    if datatype == "BYTES":
        return deserialize_bytes(raw, math.prod(shape), f"{where}.data").reshape(shape)
    dtype = np.dtype(DATATYPES[datatype]).newbyteorder("<")
    if len(raw) != math.prod(shape) * dtype.itemsize:
        raise InvalidInput(
            f"{len(raw)} bytes do not make a {datatype} tensor of shape {shape}",
            field=f"{where}.data",
        )
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("=")).reshape(shape)


def tensor_to_raw(tensor: Tensor) -> bytes:
    """The raw little-endian bytes of a tensor (BYTES length-prefixed)."""
    if tensor.datatype == "BYTES":
        return serialize_bytes(tensor.data)
    dtype = np.dtype(DATATYPES[tensor.datatype]).newbyteorder("<")
    return np.ascontiguousarray(tensor.data, dtype=dtype).tobytes()


def check_shape(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value
    ):
        raise InvalidInput("shape must be a list of non-negative integers", field=where)
    if math.prod(value) > MAX_ELEMENTS:
        raise InvalidInput(f"tensor has more than {MAX_ELEMENTS} elements", field=where)
    return value


def _from_json(data: Any, datatype: str, shape: list[int], where: str) -> np.ndarray:
    flat = np.array(data, dtype=np.object_).reshape(-1) if isinstance(data, list) else None
    if flat is None:
        raise InvalidInput("data must be a list", field=where)
    if flat.size != math.prod(shape):
        raise InvalidInput(
            f"data has {flat.size} elements, shape {shape} needs {math.prod(shape)}", field=where
        )
    if datatype == "BYTES":
        if not all(isinstance(x, str) for x in flat):
            raise InvalidInput("BYTES data must be strings", field=where)
        return np.array([x.encode("utf-8") for x in flat], np.object_).reshape(shape)
    try:
        return np.array(flat.tolist(), dtype=DATATYPES[datatype]).reshape(shape)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(f"data does not fit {datatype}: {exc}", field=where) from None


def _object(value: Any, where: str) -> dict[str, Any]:
    """An optional JSON object ("parameters"): absent is empty, anything else refused."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("must be an object", field=where)
    return value


def parse_request(body: bytes, header_length: int | None = None) -> InferRequest:
    """An inference request from its HTTP body (JSON, or JSON + binary tensors)."""
    head = body if header_length is None else body[:header_length]
    if header_length is not None and not 0 < header_length <= len(body):
        raise InvalidInput("Inference-Header-Content-Length is out of range", field=HEADER_LENGTH)
    try:
        doc = json.loads(head)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidInput("request header is not valid JSON", field="body") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise InvalidInput("request needs a non-empty list of inputs", field="inputs")
    blob, offset = body[len(head) :], 0
    inputs = []
    for i, spec in enumerate(doc["inputs"]):
        where = f"inputs[{i}]"
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise InvalidInput("each input needs a name", field=f"{where}.name")
        datatype = spec.get("datatype")
        if datatype not in DATATYPES:
            raise InvalidInput(f"unknown datatype {datatype!r}", field=f"{where}.datatype")
        shape = check_shape(spec.get("shape"), f"{where}.shape")
        params = _object(spec.get("parameters"), f"{where}.parameters")
        size = params.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(blob):
                raise InvalidInput(
                    "binary_data_size does not match the body",
                    field=f"{where}.parameters.binary_data_size",
                )
            raw = blob[offset : offset + size]
            offset += size
            data = tensor_from_raw(raw, datatype, shape, where)
        elif "data" in spec:
            data = _from_json(spec["data"], datatype, shape, f"{where}.data")
        else:
            raise InvalidInput("input has neither data nor binary_data_size", field=f"{where}.data")
        extra = {k: v for k, v in params.items() if k != "binary_data_size"}
        inputs.append(Tensor(spec["name"], datatype, data, extra))
    if offset != len(blob):
        raise InvalidInput("body holds bytes no input claims", field="body")
    outputs = {}
    requested = doc.get("outputs") or []
    if not isinstance(requested, list):
        raise InvalidInput("outputs must be a list", field="outputs")
    for i, spec in enumerate(requested):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise InvalidInput("each output needs a name", field=f"outputs[{i}].name")
        binary = _object(spec.get("parameters"), f"outputs[{i}].parameters").get("binary_data")
        outputs[spec["name"]] = bool(binary)
    parameters = _object(doc.get("parameters"), "parameters")
    request_id = doc.get("id")
    return InferRequest(
        str(request_id) if request_id is not None else None,
        inputs,
        outputs,
        parameters,
        bool(parameters.get("binary_data_output", False)),
    )


def encode_response(
    model_name: str,
    model_version: str,
    request: InferRequest,
    outputs: list[Tensor],
) -> tuple[bytes, int | None]:
    """The response body and, when binary tensors follow the JSON, its header length."""
    wanted = request.outputs or {t.name: request.binary_outputs for t in outputs}
    doc: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": []}
    if request.id is not None:
        doc["id"] = request.id
    blobs = []
    for t in outputs:
        if t.name not in wanted:
            continue
        spec: dict[str, Any] = {"name": t.name, "datatype": t.datatype, "shape": t.shape}
        if wanted[t.name] or request.binary_outputs:
            raw = tensor_to_raw(t)
            spec["parameters"] = {**t.parameters, "binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            if t.datatype == "BYTES":
                spec["data"] = [b.decode("utf-8", "replace") for b in t.data.reshape(-1)]
            else:
                spec["data"] = t.data.reshape(-1).tolist()
            if t.parameters:
                spec["parameters"] = t.parameters
        doc["outputs"].append(spec)
    head = json.dumps(doc, separators=(",", ":")).encode()
    if not blobs:
        return head, None
    return head + b"".join(blobs), len(head)
