"""The three models as Open Inference Protocol v2 models: their tensors, and how one
inference maps onto the REST API of the service behind it.

=============  =======================================  ========================================
model          inputs                                   outputs
=============  =======================================  ========================================
translation    TEXT BYTES [n] (UTF-8)                   TRANSLATION BYTES [n], SCORE FP32 [n]
imagegen       PROMPT BYTES [n] (one image each),       IMAGE UINT8 [n, H, W, 3],
               NEGATIVE_PROMPT BYTES [1] (optional)     SEED UINT64 [n]
gan            SEED INT64/UINT64 [n],                   IMAGE UINT8 [n, H, W, 3],
               DIGIT INT32 [n] (optional, -1 = any)     DIGIT INT32 [n]
=============  =======================================  ========================================

Request parameters carry the options: translation ``num_beams``, ``max_new_tokens``,
``length_penalty``; imagegen ``steps``, ``guidance_scale``, ``width``, ``height``,
``scheduler``, ``seed`` (image i uses seed + i; omitted = random, returned in SEED); gan
``truncation``. Row i of the GAN equals ``POST /v1/samples {"seed": SEED[i], "digit":
DIGIT[i], "n": 1}``, and image i of imagegen equals ``POST /v1/images`` with seed + i, so
the protocols give the same pixels as the REST API.

Library code: plain values in and out; the gateway makes the calls.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from genserve import images
from genserve.errors import InvalidInput
from genserve.limits import MAX_IMAGES, MAX_SAMPLES
from genserve.protocol.tensors import InferRequest, Tensor

VERSION = "1"
PLATFORM = "genserve_onnxruntime"


@dataclass(frozen=True)
class TensorSpec:
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
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
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
            if isinstance(value, bool) or not isinstance(value, accepted):
                raise InvalidInput(
                    f"parameter {key!r} has the wrong type", field=f"parameters.{key}"
                )


_INTEGER_TYPES = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")


def _check_datatype(spec: TensorSpec, tensor: Tensor, where: str) -> None:
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


def _texts(tensor: Tensor) -> list[str]:
    out = []
    for i, raw in enumerate(tensor.data.reshape(-1)):
        try:
            out.append(bytes(raw).decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidInput("text is not UTF-8", field=f"inputs.{tensor.name}[{i}]") from None
    return out


def _options(request: InferRequest, names: tuple[str, ...]) -> dict[str, Any]:
    return {k: request.parameters[k] for k in names if k in request.parameters}


def _bytes_tensor(name: str, values: list[str]) -> Tensor:
    return Tensor(name, "BYTES", np.array([v.encode("utf-8") for v in values], dtype=np.object_))


def _image_tensor(encoded: list[str]) -> Tensor:
    pixels = np.stack([images.decode_rgb(base64.b64decode(e)) for e in encoded])
    return Tensor("IMAGE", "UINT8", pixels)


# -- translation ------------------------------------------------------------------------

_TRANSLATION_OPTIONS = ("num_beams", "max_new_tokens", "length_penalty")


def _translation_plan(request: InferRequest) -> list[Call]:
    texts = _texts(request.input("TEXT"))
    return [Call("/translate", {"texts": texts, **_options(request, _TRANSLATION_OPTIONS)})]


def _translation_collect(_calls: list[Call], results: list[dict[str, Any]]) -> list[Tensor]:
    out = results[0]["translations"]
    return [
        _bytes_tensor("TRANSLATION", [t["text"] for t in out]),
        Tensor("SCORE", "FP32", np.array([t["score"] for t in out], dtype=np.float32)),
    ]


# -- image generation -------------------------------------------------------------------

_IMAGE_OPTIONS = ("steps", "guidance_scale", "width", "height", "scheduler")


def _imagegen_plan(request: InferRequest) -> list[Call]:
    prompts = _texts(request.input("PROMPT"))
    if len(prompts) > MAX_IMAGES:
        raise InvalidInput(f"at most {MAX_IMAGES} prompts", field="inputs.PROMPT")
    negative = ""
    if any(t.name == "NEGATIVE_PROMPT" for t in request.inputs):
        values = _texts(request.input("NEGATIVE_PROMPT"))
        if len(values) != 1:
            raise InvalidInput("NEGATIVE_PROMPT takes one text", field="inputs.NEGATIVE_PROMPT")
        negative = values[0]
    seed = request.parameters.get("seed")
    base = secrets.randbits(48) if seed is None else seed
    options = _options(request, _IMAGE_OPTIONS)
    return [
        Call(
            "/images",
            {
                "prompt": prompt,
                "negative_prompt": negative,
                "seed": base + i,
                "n": 1,
                "format": "json",
                **options,
            },
        )
        for i, prompt in enumerate(prompts)
    ]


def _imagegen_collect(calls: list[Call], results: list[dict[str, Any]]) -> list[Tensor]:
    encoded = [r["images"][0]["png_base64"] for r in results]
    seeds = np.array([c.body["seed"] for c in calls], dtype=np.uint64)
    return [_image_tensor(encoded), Tensor("SEED", "UINT64", seeds)]


# -- GAN --------------------------------------------------------------------------------


def _gan_plan(request: InferRequest) -> list[Call]:
    seeds = request.input("SEED").data.reshape(-1)
    if len(seeds) > MAX_SAMPLES:
        raise InvalidInput(f"at most {MAX_SAMPLES} seeds", field="inputs.SEED")
    digits = np.full(seeds.shape, -1, dtype=np.int64)
    if any(t.name == "DIGIT" for t in request.inputs):
        digits = request.input("DIGIT").data.reshape(-1).astype(np.int64)
        if digits.shape != seeds.shape:
            raise InvalidInput("DIGIT needs one value per SEED", field="inputs.DIGIT")
    options = _options(request, ("truncation",))
    calls = []
    for seed, digit in zip(seeds.tolist(), digits.tolist(), strict=True):
        body: dict[str, Any] = {"seed": int(seed), "n": 1, "format": "json", **options}
        if digit != -1:
            body["digit"] = int(digit)
        calls.append(Call("/samples", body))
    return calls


def _gan_collect(_calls: list[Call], results: list[dict[str, Any]]) -> list[Tensor]:
    encoded = [r["images"][0]["png_base64"] for r in results]
    digits = np.array([r["images"][0]["digit"] for r in results], dtype=np.int32)
    return [_image_tensor(encoded), Tensor("DIGIT", "INT32", digits)]


MODELS: dict[str, ModelSpec] = {
    "translation": ModelSpec(
        "translation",
        (TensorSpec("TEXT", "BYTES", (-1,)),),
        (TensorSpec("TRANSLATION", "BYTES", (-1,)), TensorSpec("SCORE", "FP32", (-1,))),
        {"num_beams": int, "max_new_tokens": int, "length_penalty": (int, float)},
        _translation_plan,
        _translation_collect,
        {"texts": "inputs.TEXT", **{k: f"parameters.{k}" for k in _TRANSLATION_OPTIONS}},
    ),
    "imagegen": ModelSpec(
        "imagegen",
        (
            TensorSpec("PROMPT", "BYTES", (-1,)),
            TensorSpec("NEGATIVE_PROMPT", "BYTES", (1,), optional=True),
        ),
        (TensorSpec("IMAGE", "UINT8", (-1, -1, -1, 3)), TensorSpec("SEED", "UINT64", (-1,))),
        {
            "steps": int,
            "guidance_scale": (int, float),
            "width": int,
            "height": int,
            "scheduler": str,
            "seed": int,
        },
        _imagegen_plan,
        _imagegen_collect,
        {
            "prompt": "inputs.PROMPT",
            "negative_prompt": "inputs.NEGATIVE_PROMPT",
            **{k: f"parameters.{k}" for k in ("steps", "guidance_scale", "width", "height")},
            "scheduler": "parameters.scheduler",
            "seed": "parameters.seed",
        },
    ),
    "gan": ModelSpec(
        "gan",
        (TensorSpec("SEED", "INT64", (-1,)), TensorSpec("DIGIT", "INT32", (-1,), optional=True)),
        (TensorSpec("IMAGE", "UINT8", (-1, -1, -1, 3)), TensorSpec("DIGIT", "INT32", (-1,))),
        {"truncation": (int, float)},
        _gan_plan,
        _gan_collect,
        {"seed": "inputs.SEED", "digit": "inputs.DIGIT", "truncation": "parameters.truncation"},
    ),
}
