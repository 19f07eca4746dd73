"""OIP v2 tensors against the unmodified tritonclient's own request and response code."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.http import _utils

from genserve.errors import InvalidInput
from genserve.protocol.tensors import (
    HEADER_LENGTH,
    Tensor,
    encode_response,
    parse_header_length,
    parse_request,
    tensor_from_raw,
)


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
        ({"inputs": [_ONE], "outputs": 0}, "outputs"),
        ({"inputs": [_ONE], "outputs": {}}, "outputs"),
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


# -- hostile input: every malformed request is a 400 naming the field, never a 500 -------


def _input(datatype: str, shape: list, data: object) -> bytes:
    doc = {"inputs": [{"name": "A", "datatype": datatype, "shape": shape, "data": data}]}
    return json.dumps(doc).encode()


@pytest.mark.parametrize("value", ["²", "١٢", "٣", "12 ", "+12", "-1", "", "1_0", "9" * 5000])
def test_header_length_must_be_ascii_digits(value: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_header_length(value)
    assert info.value.field == HEADER_LENGTH


def test_header_length() -> None:
    assert parse_header_length(None) is None
    assert parse_header_length("42") == 42


def test_bytes_data_that_is_not_unicode_is_refused() -> None:
    body = b'{"inputs": [{"name": "A", "datatype": "BYTES", "shape": [1], "data": ["\\ud800"]}]}'
    with pytest.raises(InvalidInput) as info:
        parse_request(body)
    assert info.value.field == "inputs[0].data"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            b'{"inputs": [{"name": "\\udfff", "datatype": "INT32", "shape": [1], "data": [1]}]}',
            "inputs[0].name",
        ),
        (
            b'{"inputs": [' + json.dumps(_ONE).encode() + b'], "parameters": {"\\ud800": 1}}',
            "parameters",
        ),
        (b'{"inputs": [' + json.dumps(_ONE).encode() + b'], "id": "\\ud800"}', "id"),
    ],
)
def test_strings_that_are_not_unicode_are_refused_anywhere(body: bytes, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_request(body)
    assert info.value.field == field


def test_escaped_surrogate_pairs_are_text() -> None:
    pair = b'"\\ud83d\\ude00"'  # an escaped surrogate pair: one emoji, valid text
    body = b'{"inputs": [{"name": "A", "datatype": "BYTES", "shape": [1], "data": [%s]}]}' % pair
    assert parse_request(body).input("A").data.tolist() == ["😀".encode()]


@pytest.mark.parametrize(
    "shape",
    [
        [0, 1 << 62],
        [0, 10**30],
        [1 << 62, 0],
        [0, 1 << 25],
        [1] * 40,  # more dimensions than any tensor needs (numpy stops at 64)
    ],
)
def test_every_dimension_is_bounded(shape: list[int]) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_request(_input("FP32", shape, []))
    assert info.value.field == "inputs[0].shape"


def test_empty_tensor_with_small_dimensions_is_fine() -> None:
    assert parse_request(_input("FP32", [0, 3], [])).input("A").data.shape == (0, 3)


@pytest.mark.parametrize(
    ("datatype", "data"),
    [
        ("INT64", [1.5]),
        ("INT64", [1.0]),
        ("INT64", ["7"]),
        ("INT64", [True]),
        ("UINT64", [False]),
        ("INT32", [None]),
        ("INT8", [[1, 2]]),  # a list where an element should be (shape [1], nested deeper)
        ("BOOL", [1]),
        ("BOOL", ["true"]),
        ("BOOL", [0.0]),
        ("FP32", [True]),
        ("FP32", ["1.5"]),
        ("FP64", [None]),
        ("BYTES", [1]),
        ("BYTES", [True]),
        ("INT32", [{"a": 1}]),
    ],
)
def test_json_data_must_have_the_datatypes_type(datatype: str, data: list) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_request(_input(datatype, [1], data))
    assert info.value.field == "inputs[0].data"


@pytest.mark.parametrize(
    ("datatype", "data", "expected"),
    [
        ("INT64", [7], [7]),
        ("UINT64", [2**64 - 1], [2**64 - 1]),
        ("BOOL", [True], [True]),
        ("FP32", [1], [1.0]),
        ("FP64", [1.5], [1.5]),
        ("FP16", [2], [2.0]),
        ("BYTES", ["x"], [b"x"]),
    ],
)
def test_json_data_of_the_right_type(datatype: str, data: list, expected: list) -> None:
    assert parse_request(_input(datatype, [1], data)).input("A").data.tolist() == expected


def test_nested_json_data_is_row_major() -> None:
    got = parse_request(_input("INT32", [2, 2], [[1, 2], [3, 4]])).input("A").data
    assert got.tolist() == [[1, 2], [3, 4]]


@pytest.mark.parametrize(
    ("doc", "tail", "field"),
    [
        (
            {
                "inputs": [
                    {
                        "name": "A",
                        "datatype": "UINT8",
                        "shape": [1],
                        "parameters": {"binary_data_size": True},
                    }
                ]
            },
            b"\x01",
            "inputs[0].parameters.binary_data_size",
        ),
        (
            {"inputs": [_ONE], "parameters": {"binary_data_output": "yes"}},
            b"",
            "parameters.binary_data_output",
        ),
        (
            {"inputs": [_ONE], "outputs": [{"name": "B", "parameters": {"binary_data": 1}}]},
            b"",
            "outputs[0].parameters.binary_data",
        ),
        ({"inputs": [_ONE], "id": {"a": 1}}, b"", "id"),
    ],
)
def test_protocol_flags_are_booleans_and_sizes_integers(doc: dict, tail: bytes, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_request(*_raw(doc, tail))
    assert info.value.field == field


def test_raw_bool_bytes_are_zero_or_one() -> None:
    assert tensor_from_raw(b"\x00\x01", "BOOL", [2], "inputs[0]").tolist() == [False, True]
    with pytest.raises(InvalidInput) as info:
        tensor_from_raw(b"\x00\x02", "BOOL", [2], "inputs[0]")
    assert info.value.field == "inputs[0].data"


def test_kserve_shaped_requests_parse() -> None:
    """What the KServe SDK's REST client sends (v2): model_name beside the inputs, an id,
    null where a field is empty."""
    doc = {
        "id": "3f1c0a52-8d7e-4a0b-9a51-2f8c1d9e6b10",
        "model_name": "gan",
        "inputs": [{"name": "SEED", "shape": [2], "datatype": "INT64", "data": [1, 2]}],
        "outputs": None,
        "parameters": None,
    }
    req = parse_request(json.dumps(doc).encode())
    assert req.id == doc["id"] and req.outputs == {} and req.parameters == {}
    assert req.input("SEED").data.tolist() == [1, 2]
