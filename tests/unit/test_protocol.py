"""OIP v2 tensors against the unmodified tritonclient's own request and response code."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.http import _utils

from genserve.errors import InvalidInput
from genserve.protocol.tensors import Tensor, encode_response, parse_request


def _request(inputs, outputs=(), parameters=None):
    body, header = _utils._get_inference_request(
        inputs, "rid-1", list(outputs), 0, False, False, 0, None, parameters
    )
    return parse_request(body if isinstance(body, bytes) else body.encode(), header)


def test_tritonclient_binary_and_json_inputs_round_trip() -> None:
    text = triton.InferInput("text", [2], "BYTES")
    text.set_data_from_numpy(np.array(["I am a student.", "héllo 🙂"], dtype=object))
    seed = triton.InferInput("seed", [1], "UINT64")
    seed.set_data_from_numpy(np.array([2**64 - 1], np.uint64))
    x = triton.InferInput("x", [2, 3], "FP32")
    x.set_data_from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3), binary_data=False)
    req = _request(
        [text, seed, x], [triton.InferRequestedOutput("image", binary_data=True)], {"num_beams": 2}
    )
    assert req.id == "rid-1" and req.parameters == {"num_beams": 2}
    assert list(req.input("text").data) == [b"I am a student.", "héllo 🙂".encode()]
    assert req.input("seed").data.dtype == np.uint64 and req.input("seed").data[0] == 2**64 - 1
    np.testing.assert_array_equal(req.input("x").data, np.arange(6).reshape(2, 3))
    assert req.outputs == {"image": True}


@pytest.mark.parametrize("binary", [True, False])
def test_responses_decode_with_tritonclient(binary: bool) -> None:
    x = triton.InferInput("x", [1], "INT32")
    x.set_data_from_numpy(np.array([1], np.int32))
    outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("image", "text")]
    req = _request([x], outputs)
    image = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    text = np.array([b"Je suis \xc3\xa9tudiant."], dtype=object)
    body, header = encode_response(
        "translation", "1", req, [Tensor("image", "UINT8", image), Tensor("text", "BYTES", text)]
    )
    result = triton.InferResult.from_response_body(body, header_length=header)
    np.testing.assert_array_equal(result.as_numpy("image"), image)
    assert result.as_numpy("text")[0] in (b"Je suis \xc3\xa9tudiant.", "Je suis étudiant.")
    assert result.get_response()["id"] == "rid-1"


def _raw(doc: dict, tail: bytes = b"") -> tuple[bytes, int | None]:
    head = json.dumps(doc).encode()
    return head + tail, (len(head) if tail else None)


@pytest.mark.parametrize(
    ("doc", "tail", "field"),
    [
        ({"inputs": []}, b"", "inputs"),
        (
            {"inputs": [{"name": "a", "datatype": "FP99", "shape": [1], "data": [1]}]},
            b"",
            "inputs[0].datatype",
        ),
        (
            {"inputs": [{"name": "a", "datatype": "FP32", "shape": [-1], "data": [1]}]},
            b"",
            "inputs[0].shape",
        ),
        (
            {"inputs": [{"name": "a", "datatype": "FP32", "shape": [2], "data": [1]}]},
            b"",
            "inputs[0].data",
        ),
        (
            {"inputs": [{"name": "a", "datatype": "INT8", "shape": [1], "data": [1000]}]},
            b"",
            "inputs[0].data",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "a",
                        "datatype": "FP32",
                        "shape": [2],
                        "parameters": {"binary_data_size": 8},
                    }
                ]
            },
            b"\x00" * 4,
            "inputs[0].parameters.binary_data_size",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "a",
                        "datatype": "BYTES",
                        "shape": [1],
                        "parameters": {"binary_data_size": 6},
                    }
                ]
            },
            b"\x09\x00\x00\x00ab",
            "inputs[0].data",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "a",
                        "datatype": "FP32",
                        "shape": [1],
                        "parameters": {"binary_data_size": 4},
                    }
                ]
            },
            b"\x00" * 8,
            "body",
        ),
        (
            {"inputs": [{"name": "a", "datatype": "FP32", "shape": [1 << 30], "data": []}]},
            b"",
            "inputs[0].shape",
        ),
    ],
)
def test_bad_requests_name_the_field(doc: dict, tail: bytes, field: str) -> None:
    body, header = _raw(doc, tail)
    with pytest.raises(InvalidInput) as info:
        parse_request(body, header)
    assert info.value.field == field


def test_not_json() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_request(b"\x80\x04K\x01.")
    assert info.value.field == "body"


_ONE = {"name": "A", "datatype": "INT32", "shape": [1], "data": [1]}


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"inputs": [{**_ONE, "parameters": [1]}]}, "inputs[0].parameters"),
        ({"inputs": [_ONE], "outputs": 5}, "outputs"),
        (
            {"inputs": [_ONE], "outputs": [{"name": "B", "parameters": "x"}]},
            "outputs[0].parameters",
        ),
        ("[" * 60_000, "body"),
    ],
)
def test_malformed_requests_are_client_errors(doc: object, field: str) -> None:
    body = doc.encode() if isinstance(doc, str) else json.dumps(doc).encode()
    with pytest.raises(InvalidInput) as info:
        parse_request(body)
    assert info.value.field == field
