"""The ``double`` kind's contract: settings, REST schema and route, protocol tensors."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import SettingsConfigDict

from genserve.kinds import Example, KindSettings, ModelKind, Route
from genserve.protocol.mapping import Call, ModelSpec, TensorMetadata
from genserve.protocol.tensors import InferRequest, Tensor

MAX_VALUES = 64


class DoubleSettings(KindSettings):
    model_config = SettingsConfigDict(env_prefix="GENSERVE_DOUBLE_")

    model: str = Field("double", description="model folder name under GENSERVE_MODELS_DIR")


class DoubleRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    values: list[float] = Field(min_length=1, max_length=MAX_VALUES)


class DoubleResponse(BaseModel):
    values: list[float]


def _plan(request: InferRequest) -> list[Call]:
    values = request.input("X").data.reshape(-1).astype(float).tolist()
    return [Call("/v1/double", {"values": values})]


def _collect(_calls: list[Call], results: list[dict[str, Any]]) -> list[Tensor]:
    return [Tensor("Y", "FP32", np.array(results[0]["values"], dtype=np.float32))]


KIND = ModelKind(
    name="double",
    title="a test kind that doubles a vector",
    service="tests.kinds.double.service:DoubleService",
    port_offset=13,
    settings=DoubleSettings,
    model="tests.kinds.double.model:Doubler",
    routes=(Route("POST", "/v1/double", "Double every value.", DoubleRequest, DoubleResponse),),
    oip=ModelSpec(
        "double",
        (TensorMetadata("X", "FP32", (-1,)),),
        (TensorMetadata("Y", "FP32", (-1,)),),
        {},
        _plan,
        _collect,
        {"values": "inputs.X"},
    ),
    timeout_s=10.0,
    export="tests.kinds.double.model:export",
    example=Example("/v1/double", {"values": [1.5]}, (("X", "FP32", (1.5,)),)),
)
