"""Hypothesis strategies for hostile inference-protocol requests, and the property every
front end keeps: whatever arrives, the codec and the data plane's model check and plan
raise only genserve errors with a 4xx status, never anything else.

Used by tests/unit/test_protocol_fuzz.py; ``python -m tests.unit.oip_fuzz`` runs the
gRPC half in a process of its own, since genserve's inference_pb2 and tritonclient's
service_pb2 (imported by other tests) cannot share one protobuf descriptor pool.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from genserve import kinds
from genserve.errors import GenserveError
from genserve.protocol.tensors import DATATYPES, MAX_ELEMENTS, InferRequest

# Fast and the same on every run: derandomized, no example database.
FUZZ = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

NAMES = sorted({t.name for k in kinds.kinds() for t in k.oip.inputs} | {"", "X"})
PARAMETERS = sorted({p for k in kinds.kinds() for p in k.oip.parameters} | {"binary_data_output"})
DTYPES = [*DATATYPES, "FP8", "", "int64"]
LONE = ["\ud800", "\udfff", "a\udc80b"]  # JSON can spell them; UTF-8 cannot

texts = st.one_of(st.text(max_size=12), st.sampled_from(LONE))
dims = st.one_of(
    st.integers(0, 4),
    st.sampled_from([-1, MAX_ELEMENTS, MAX_ELEMENTS + 1, 1 << 31, 1 << 62, (1 << 63) - 1]),
)
shapes = st.lists(dims, max_size=6) | st.lists(st.just(1), min_size=30, max_size=70)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=24,
)
parameter_values = st.one_of(
    st.booleans(), st.integers(-(2**66), 2**66), st.floats(), texts, json_values
)


# Values of each datatype's own kind, mostly; now and then one of another.
ELEMENTS: dict[str, st.SearchStrategy[Any]] = {
    "BOOL": st.booleans(),
    **{n: st.integers(-(2**64), 2**64) for n in DATATYPES if n[0] in "IU"},
    **{n: st.floats() | st.integers(-(2**70), 2**70) for n in ("FP16", "FP32", "FP64")},
    "BYTES": texts,
}
# Shapes that hold few elements, or none: with a zero, any other dimension fits the count.
FEW = st.lists(st.integers(0, 3), max_size=3) | st.sampled_from(
    [[0, 1 << 62], [1 << 62, 0], [0, 10**30], [0, MAX_ELEMENTS + 1], [1] * 40, []]
)


@st.composite
def http_bodies(draw: st.DrawFn) -> tuple[bytes, int | None]:
    """A JSON request shaped like the protocol's, every field possibly wrong, perhaps
    followed by binary tensors, with the header length the client would send (or not).
    Half the tensors are coherent (data that fills the shape, binary sizes that match the
    body), so that a request gets past the first check often enough to meet the later ones."""
    tail = bytearray()

    def loose() -> dict[str, Any]:
        spec: dict[str, Any] = {
            "name": draw(st.sampled_from(NAMES) | texts),
            "datatype": draw(st.sampled_from(DTYPES)),
            "shape": draw(shapes | json_values),
        }
        if draw(st.booleans()):
            spec["data"] = draw(st.lists(json_values, max_size=8) | json_values)
        if draw(st.booleans()):
            spec["parameters"] = draw(
                st.fixed_dictionaries(
                    {}, optional={"binary_data_size": st.integers(-2, 64) | json_values}
                )
                | json_values
            )
        return spec

    def coherent() -> dict[str, Any]:
        return tensor(draw, tail, draw(st.sampled_from(NAMES)), draw(st.sampled_from(DTYPES)))

    doc: dict[str, Any] = {
        "inputs": [
            coherent() if draw(st.booleans()) else loose() for _ in range(draw(st.integers(0, 3)))
        ]
    }
    return finish(draw, doc, tail)


@st.composite
def model_bodies(draw: st.DrawFn) -> tuple[bytes, int | None]:
    """A request for one of the models: its inputs (the optional ones perhaps left out) of
    its datatypes mostly, values of every kind now and then, its parameters of any type."""
    kind = draw(st.sampled_from(list(kinds.kinds())))
    tail = bytearray()
    inputs = []
    for spec in kind.oip.inputs:
        if spec.optional and draw(st.booleans()):
            continue
        datatype = spec.datatype if draw(st.integers(0, 4)) else draw(st.sampled_from(DTYPES))
        inputs.append(tensor(draw, tail, spec.name, datatype))
    doc: dict[str, Any] = {"inputs": draw(st.permutations(inputs))}
    names = sorted(kind.oip.parameters)
    doc["parameters"] = draw(st.dictionaries(st.sampled_from(names), parameter_values, max_size=3))
    return finish(draw, doc, tail)


def tensor(draw: st.DrawFn, tail: bytearray, name: str, datatype: str) -> dict[str, Any]:
    """A tensor whose data fills its shape, as JSON or as binary appended to ``tail``."""
    if datatype not in DATATYPES:
        return {"name": name, "datatype": datatype, "shape": [1], "data": [1]}
    shape = draw(FEW)
    count = math.prod(shape) if len(shape) < 40 else 1
    spec: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
    if draw(st.booleans()):
        element = ELEMENTS[datatype] | (scalars if draw(st.booleans()) else st.nothing())
        spec["data"] = draw(st.lists(element, min_size=count, max_size=count))
        return spec
    if datatype == "BYTES":
        items = draw(st.lists(st.binary(max_size=6), min_size=count, max_size=count))
        raw = b"".join(len(i).to_bytes(4, "little") + i for i in items)
    else:
        raw = draw(st.binary(min_size=count * 8, max_size=count * 8))
        raw = raw[: count * np.dtype(DATATYPES[datatype]).itemsize]
    raw = raw[: draw(st.integers(0, len(raw)))] if draw(st.booleans()) else raw
    spec["parameters"] = {"binary_data_size": len(raw)}
    tail.extend(raw)
    return spec


def finish(draw: st.DrawFn, doc: dict[str, Any], tail: bytearray) -> tuple[bytes, int | None]:
    """The rest of a request (parameters, outputs, id, stray bytes) and its header length."""
    if draw(st.booleans()):
        doc["parameters"] = draw(
            st.dictionaries(st.sampled_from(PARAMETERS) | texts, parameter_values, max_size=4)
        )
    if draw(st.booleans()):
        doc["outputs"] = draw(
            st.lists(
                st.fixed_dictionaries(
                    {"name": st.sampled_from(["IMAGE", "DIGIT", "TRANSLATION", "SEED"]) | texts},
                    optional={"parameters": st.dictionaries(texts, json_values, max_size=2)},
                ),
                max_size=3,
            )
            | json_values
        )
    if draw(st.booleans()):
        doc["id"] = draw(json_values)
    head = json.dumps(doc).encode()
    if draw(st.booleans()):
        tail.extend(draw(st.binary(max_size=16)))
    honest = len(head) if tail else None
    header = draw(st.sampled_from([honest, honest, None]) | st.integers(-3, len(head) + 3))
    return head + bytes(tail), header


def through_every_model(request: InferRequest) -> None:
    """The data plane's work before any call: each model's check and plan, and each
    planned call validated with its route's schema. Only 4xx genserve errors may leave."""
    from services.dataplane import _validate  # the dataplane's own check of each call

    for kind in kinds.kinds():
        try:
            kind.oip.check(request)
            for call in kind.oip.plan(request):
                _validate(kind, call)
        except GenserveError as exc:
            client_error(exc)


def client_error(exc: GenserveError) -> None:
    assert exc.is_client_error, f"{type(exc).__name__} {exc.http_status}: {exc.message}"
    if exc.field is not None:
        exc.field.encode("utf-8")  # the field goes back in the error: it must be text


# -- gRPC (run in a process of its own) ---------------------------------------------------


def grpc_properties() -> None:
    from google.protobuf.message import DecodeError
    from hypothesis import given

    from genserve.protocol import inference_pb2 as pb
    from services.oip_grpc import request_from_proto

    def run(msg: Any) -> None:
        try:
            request = request_from_proto(msg)
        except GenserveError as exc:
            client_error(exc)
            return
        through_every_model(request)

    @FUZZ
    @given(st.binary(max_size=512))
    def any_bytes(raw: bytes) -> None:
        try:
            msg = pb.ModelInferRequest.FromString(raw)
        except DecodeError:
            return
        run(msg)

    contents_fields = [f.name for f in pb.InferTensorContents.DESCRIPTOR.fields]
    int64 = st.integers(-(2**63), 2**63 - 1)

    # Where each datatype's values go when not sent raw (services/oip_grpc.py _CONTENTS).
    typed = {
        "BOOL": "bool_contents",
        **{n: "int_contents" for n in ("INT8", "INT16", "INT32")},
        "INT64": "int64_contents",
        **{n: "uint_contents" for n in ("UINT8", "UINT16", "UINT32")},
        "UINT64": "uint64_contents",
        "FP32": "fp32_contents",
        "FP64": "fp64_contents",
        "BYTES": "bytes_contents",
    }
    values: dict[str, st.SearchStrategy[Any]] = {
        "bool_contents": st.booleans(),
        "int_contents": st.integers(-(2**31), 2**31 - 1),
        "int64_contents": int64,
        "uint_contents": st.integers(0, 2**32 - 1),
        "uint64_contents": st.integers(0, 2**64 - 1),
        "fp32_contents": st.floats(width=32),
        "fp64_contents": st.floats(),
        "bytes_contents": st.binary(max_size=8),
    }

    @st.composite
    def messages(draw: st.DrawFn) -> Any:
        """Requests for the models, half of each tensor coherent (contents or raw bytes
        that fill its shape, as a client would send), the rest anything protobuf holds."""
        kind = draw(st.sampled_from(list(kinds.kinds())))
        msg = pb.ModelInferRequest(model_name=kind.name)
        raw = draw(st.booleans())
        specs = [(s.name, s.datatype) for s in kind.oip.inputs]
        for name, datatype in draw(st.lists(st.sampled_from(specs), max_size=3)):
            if not draw(st.integers(0, 3)):
                name = draw(st.sampled_from(NAMES) | st.text(max_size=8))
            if not draw(st.integers(0, 3)):
                datatype = draw(st.sampled_from(DTYPES))
            if draw(st.booleans()):
                shape = draw(FEW)
                shape = [min(d, 2**63 - 1) for d in shape] if len(shape) < 40 else [1]
            else:
                shape = draw(st.lists(st.one_of(dims, int64), max_size=5))
            t = msg.inputs.add(name=name, datatype=datatype, shape=shape)
            count = math.prod(shape) if 0 <= math.prod(shape) <= 8 else 1
            if raw:
                if datatype in DATATYPES and datatype != "BYTES" and draw(st.booleans()):
                    size = count * np.dtype(DATATYPES[datatype]).itemsize
                    msg.raw_input_contents.append(draw(st.binary(min_size=size, max_size=size)))
                elif datatype == "BYTES" and draw(st.booleans()):
                    items = draw(st.lists(st.binary(max_size=6), min_size=count, max_size=count))
                    msg.raw_input_contents.append(
                        b"".join(len(i).to_bytes(4, "little") + i for i in items)
                    )
                else:
                    msg.raw_input_contents.append(draw(st.binary(max_size=64)))
            else:
                field = typed.get(datatype) if draw(st.integers(0, 3)) else None
                field = field or draw(st.sampled_from(contents_fields))
                size = count if draw(st.booleans()) else draw(st.integers(0, 6))
                getattr(t.contents, field).extend(
                    draw(st.lists(values[field], min_size=size, max_size=size))
                )
        if raw and draw(st.booleans()):
            msg.raw_input_contents.append(b"extra")
        for key in draw(st.lists(st.sampled_from(PARAMETERS) | st.text(max_size=6), max_size=3)):
            choice = draw(
                st.sampled_from(
                    ["bool_param", "int64_param", "string_param", "double_param", "uint64_param"]
                )
            )
            value = {
                "bool_param": st.booleans(),
                "int64_param": int64,
                "string_param": st.text(max_size=6),
                "double_param": st.floats(),
                "uint64_param": st.integers(0, 2**64 - 1),
            }[choice]
            setattr(msg.parameters[key], choice, draw(value))
        return pb.ModelInferRequest.FromString(msg.SerializeToString())

    @FUZZ
    @given(messages())
    def protocol_shaped(msg: Any) -> None:
        run(msg)

    any_bytes()
    protocol_shaped()


if __name__ == "__main__":
    grpc_properties()
    print("gRPC properties hold")
    sys.exit(0)
