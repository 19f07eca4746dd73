"""The three models as inference-protocol models: tensors to REST calls and back."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from genserve import images, kinds
from genserve.errors import InvalidInput
from genserve.protocol.mapping import Call
from genserve.protocol.tensors import InferRequest, Tensor

MODELS = {k.name: k.oip for k in kinds.kinds()}


def request(*inputs: Tensor, **parameters) -> InferRequest:
    return InferRequest(None, list(inputs), {}, parameters)


def text(name: str, *values: str) -> Tensor:
    return Tensor(name, "BYTES", np.array([v.encode() for v in values], dtype=object))


def test_translation_is_one_call_with_every_text_and_options() -> None:
    spec = MODELS["translation"]
    req = request(text("TEXT", "Hello.", "Bye."), num_beams=2)
    spec.check(req)
    assert spec.plan(req) == [Call("/v1/translate", {"texts": ["Hello.", "Bye."], "num_beams": 2})]
    out = spec.collect([], [{"translations": [{"text": "Salut.", "score": -0.5}]}])
    assert [t.name for t in out] == ["TRANSLATION", "SCORE"]
    assert out[0].data.tolist() == [b"Salut."] and out[1].data.dtype == np.float32


def test_gan_rows_become_one_sample_each_with_the_seed_and_digit() -> None:
    spec = MODELS["gan"]
    seeds = Tensor("SEED", "UINT64", np.array([1, 2], dtype=np.uint64))
    digits = Tensor("DIGIT", "INT32", np.array([-1, 4], dtype=np.int32))
    req = request(seeds, digits, truncation=0.5)
    spec.check(req)
    calls = spec.plan(req)
    assert [c.body for c in calls] == [
        {"seed": 1, "n": 1, "format": "json", "truncation": 0.5},
        {"seed": 2, "n": 1, "format": "json", "truncation": 0.5, "digit": 4},
    ]
    png = base64.b64encode(images.png(np.full((4, 4), 200, np.uint8))).decode()
    results = [{"images": [{"digit": d, "png_base64": png}]} for d in (7, 4)]
    image, drawn = spec.collect(calls, results)
    assert image.data.shape == (2, 4, 4, 3) and image.data.dtype == np.uint8
    assert int(image.data.max()) == 200 and drawn.data.tolist() == [7, 4]


def test_imagegen_prompt_i_uses_seed_plus_i() -> None:
    spec = MODELS["imagegen"]
    req = request(text("PROMPT", "a", "b"), text("NEGATIVE_PROMPT", "c"), seed=10, steps=3)
    spec.check(req)
    calls = spec.plan(req)
    assert [(c.body["prompt"], c.body["seed"], c.body["negative_prompt"]) for c in calls] == [
        ("a", 10, "c"),
        ("b", 11, "c"),
    ]
    assert all(c.body["steps"] == 3 and c.body["n"] == 1 for c in calls)
    unseeded = spec.plan(request(text("PROMPT", "a")))
    assert 0 <= unseeded[0].body["seed"] < 2**48  # random, and returned in SEED


@pytest.mark.parametrize(
    ("model", "req", "field"),
    [
        ("translation", request(text("WORDS", "x")), "inputs[0].name"),
        (
            "translation",
            request(Tensor("TEXT", "FP32", np.zeros(1, np.float32))),
            "inputs[0].datatype",
        ),
        ("translation", request(text("TEXT", "x"), beams=2), "parameters.beams"),
        ("translation", request(text("TEXT", "x"), num_beams="2"), "parameters.num_beams"),
        ("translation", request(text("TEXT", "x"), num_beams=True), "parameters.num_beams"),
        ("imagegen", request(text("NEGATIVE_PROMPT", "x")), "inputs.PROMPT"),
        ("imagegen", request(text("PROMPT", *["p"] * 17)), "inputs.PROMPT"),
        ("gan", request(Tensor("SEED", "INT64", np.zeros((2, 2), np.int64))), "inputs[0].shape"),
        ("gan", request(Tensor("SEED", "INT64", np.zeros(65, np.int64))), "inputs.SEED"),
    ],
)
def test_bad_requests_name_the_protocol_field(model: str, req: InferRequest, field: str) -> None:
    spec = MODELS[model]
    with pytest.raises(InvalidInput) as info:
        spec.check(req)
        spec.plan(req)
    assert info.value.field == field


def test_rest_fields_map_to_protocol_fields() -> None:
    assert MODELS["translation"].wire_field("texts.3") == "inputs.TEXT[3]"
    assert MODELS["imagegen"].wire_field("steps") == "parameters.steps"
    assert MODELS["gan"].wire_field("seed") == "inputs.SEED"
    assert MODELS["gan"].wire_field(None) is None
    meta = MODELS["gan"].metadata()
    assert meta["versions"] == ["1"] and meta["inputs"][0] == {
        "name": "SEED",
        "datatype": "INT64",
        "shape": (-1,),
    }


@pytest.mark.parametrize(
    ("model", "parameters"),
    [
        ("gan", {"truncation": True}),
        ("gan", {"truncation": "0.5"}),
        ("imagegen", {"seed": False}),
        ("imagegen", {"steps": 6.0}),
        ("translation", {"length_penalty": True}),
        ("translation", {"max_new_tokens": None}),
    ],
)
def test_parameters_take_no_bool_where_a_number_belongs(model: str, parameters: dict) -> None:
    spec = MODELS[model]
    first = spec.inputs[0]
    value = np.zeros(1, np.int64) if first.datatype == "INT64" else np.array([b"x"], object)
    req = request(Tensor(first.name, first.datatype, value), **parameters)
    with pytest.raises(InvalidInput) as info:
        spec.check(req)
    assert info.value.field == f"parameters.{next(iter(parameters))}"


def test_a_declared_bool_parameter_takes_a_bool_only() -> None:
    from dataclasses import replace

    spec = replace(MODELS["translation"], parameters={"flag": bool, "n": int})
    spec.check(request(text("TEXT", "x"), flag=True, n=2))
    with pytest.raises(InvalidInput):
        spec.check(request(text("TEXT", "x"), flag=1))
