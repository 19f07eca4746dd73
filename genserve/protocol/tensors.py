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
import re
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from genserve.errors import InvalidInput

HEADER_LENGTH = "inference-header-content-length"
MAX_ELEMENTS = 1 << 24  # in a tensor, and so in any one of its dimensions
MAX_DIMS = 32  # numpy stops at 64; no model here takes more than 4
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
# The JSON values each datatype accepts, by exact type: no bool where a number belongs (bool
# is an int to Python), no number where a bool belongs, no string for a number.
_NUMBER = frozenset({int, float})
JSON_TYPES: dict[str, frozenset[type]] = {
    "BOOL": frozenset({bool}),
    **{name: frozenset({int}) for name in DATATYPES if name[0] in "IU"},
    "FP16": _NUMBER,
    "FP32": _NUMBER,
    "FP64": _NUMBER,
    "BYTES": frozenset({str}),
}
_JSON_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "an object",
    type(None): "null",
}
# A JSON escape that may spell half of a surrogate pair ("\ud800"); only then is a parsed
# request searched for a lone one, which no UTF-8 encoder accepts.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


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
    if datatype == "BOOL" and raw.strip(b"\x00\x01"):
        # numpy would keep any other byte inside a bool: one byte, 0 or 1, as Triton sends
        raise InvalidInput("BOOL bytes must be 0 or 1", field=f"{where}.data")
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("=")).reshape(shape)


def tensor_to_raw(tensor: Tensor) -> bytes:
    """The raw little-endian bytes of a tensor (BYTES length-prefixed)."""
    if tensor.datatype == "BYTES":
        return serialize_bytes(tensor.data)
    dtype = np.dtype(DATATYPES[tensor.datatype]).newbyteorder("<")
    return np.ascontiguousarray(tensor.data, dtype=dtype).tobytes()


def parse_header_length(value: str | None) -> int | None:
    """The Inference-Header-Content-Length header as a number: ASCII digits only (``"²"``
    and ``"١٢"`` are digits to ``str.isdigit``, and ``int`` reads the second, but HTTP's
    numbers are ASCII), and few enough of them to stay within any body."""
    if value is None:
        return None
    if not (0 < len(value) <= 18 and value.isascii() and value.isdigit()):
        raise InvalidInput(
            "Inference-Header-Content-Length must be a length in ASCII digits", field=HEADER_LENGTH
        )
    return int(value)


def check_shape(value: Any, where: str) -> list[int]:
    """A tensor's shape, bounded in rank, in every dimension and in elements: a zero beside
    a huge dimension makes no elements but no array either."""
    if not isinstance(value, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value
    ):
        raise InvalidInput("shape must be a list of non-negative integers", field=where)
    if len(value) > MAX_DIMS:
        raise InvalidInput(f"shape has more than {MAX_DIMS} dimensions", field=where)
    if any(d > MAX_ELEMENTS for d in value) or math.prod(value) > MAX_ELEMENTS:
        raise InvalidInput(f"tensor has more than {MAX_ELEMENTS} elements", field=where)
    return value


def _flatten(data: list[Any]) -> list[Any]:
    """Nested JSON lists, row-major, without recursion (the nesting is the client's)."""
    if not any(type(x) is list for x in data):
        return data
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for x in stack[-1]:
            if type(x) is list:
                stack.append(iter(x))
                break
            out.append(x)
        else:
            stack.pop()
    return out


def _from_json(data: Any, datatype: str, shape: list[int], where: str) -> np.ndarray:
    if not isinstance(data, list):
        raise InvalidInput("data must be a list", field=where)
    flat = _flatten(data)
    if len(flat) != math.prod(shape):
        raise InvalidInput(
            f"data has {len(flat)} elements, shape {shape} needs {math.prod(shape)}", field=where
        )
    accepted = JSON_TYPES[datatype]
    if not set(map(type, flat)) <= accepted:
        i, bad = next((i, x) for i, x in enumerate(flat) if type(x) not in accepted)
        what = "booleans" if datatype == "BOOL" else "strings" if datatype == "BYTES" else None
        what = what or ("numbers" if float in accepted else "integers")
        raise InvalidInput(
            f"{datatype} data must be {what}; element {i} is {_JSON_NAMES.get(type(bad), 'other')}",
            field=where,
        )
    if datatype == "BYTES":
        try:
            items = [x.encode("utf-8") for x in flat]
        except UnicodeEncodeError:  # a lone surrogate ("\ud800")
            raise InvalidInput("BYTES data must be valid Unicode text", field=where) from None
        out = np.empty(len(items), dtype=np.object_)
        out[:] = items
        return out.reshape(shape)
    try:
        return np.array(flat, dtype=DATATYPES[datatype]).reshape(shape)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(f"data does not fit {datatype}: {exc}", field=where) from None


def check_text(doc: Any) -> None:
    """Every string of a parsed JSON request, keys included, is text: JSON escapes can spell
    a lone surrogate (``"\\ud800"``), which nothing can encode as UTF-8 (nor send back in an
    error). The field named is where it sits; data lists are not indexed."""
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            if _LONE_SURROGATE.search(value):
                raise InvalidInput("text holds a lone surrogate", field=where or "body")
        elif isinstance(value, list):
            indexed = where in ("inputs", "outputs")
            stack.extend((v, f"{where}[{i}]" if indexed else where) for i, v in enumerate(value))
        elif isinstance(value, dict):
            for key, item in value.items():
                if _LONE_SURROGATE.search(key):
                    raise InvalidInput("a key holds a lone surrogate", field=where or "body")
                stack.append((item, f"{where}.{key}" if where else key))


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
    if _SURROGATE_ESCAPE.search(head):
        check_text(doc)
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
            if type(size) is not int or size < 0 or offset + size > len(blob):
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
    requested = doc.get("outputs")
    requested = [] if requested is None else requested
    if not isinstance(requested, list):
        raise InvalidInput("outputs must be a list", field="outputs")
    for i, spec in enumerate(requested):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise InvalidInput("each output needs a name", field=f"outputs[{i}].name")
        where = f"outputs[{i}].parameters"
        outputs[spec["name"]] = _flag(_object(spec.get("parameters"), where), "binary_data", where)
    parameters = _object(doc.get("parameters"), "parameters")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("id must be a string", field="id")
    return InferRequest(
        request_id,
        inputs,
        outputs,
        parameters,
        _flag(parameters, "binary_data_output", "parameters"),
    )


def _flag(parameters: dict[str, Any], name: str, where: str) -> bool:
    """A protocol flag (``binary_data``, ``binary_data_output``): a boolean, or absent."""
    value = parameters.get(name, False)
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be a boolean", field=f"{where}.{name}")
    return value


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
