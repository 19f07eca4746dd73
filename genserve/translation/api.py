"""The translation kind's contract: its settings, REST schemas and routes, its Open
Inference Protocol v2 tensors, and its entry in genserve's table of model kinds
(``KIND``).

Light on purpose (pydantic and numpy): the gateway and the CLI import it without a
model runtime.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import SettingsConfigDict

from genserve.kinds import Example, KindSettings, ModelKind, PullSpec, Route
from genserve.limits import MAX_BEAMS, MAX_CHARS, MAX_NEW_TOKENS, MAX_TEXTS
from genserve.protocol.mapping import Call, ModelSpec, TensorMetadata, bytes_tensor, options, texts
from genserve.protocol.tensors import InferRequest, Tensor


class TranslationSettings(KindSettings):
    """The translation service (``GENSERVE_TRANSLATION_*``)."""

    model_config = SettingsConfigDict(env_prefix="GENSERVE_TRANSLATION_")

    model: str = Field("translation", description="model folder name under GENSERVE_MODELS_DIR")
    max_batch_size: int = Field(32, ge=1, le=1024, description="texts per ONNX Runtime batch")
    max_queue: int = Field(512, ge=1, le=1_000_000, description="queued texts before 503")
    max_calls: int = Field(
        3,
        ge=1,
        le=8,
        description="searches at once: beside the one taken in queue order, a request that "
        "costs less (texts x beams) than the costliest of each running one starts at once, "
        "so a greedy sentence does not wait for beam searches (BENCHMARKS.md); 1 = one at "
        "a time",
    )
    iteration_batching: bool = Field(
        False,
        description="requests join the running decode at the next decoder step, whatever "
        "their options, and leave it as they finish; false: a batch runs to its end before "
        "the next one starts (the default: measured faster on a 2-core host, BENCHMARKS.md)",
    )


# -- REST -------------------------------------------------------------------------------

Text = Annotated[str, Field(min_length=1, max_length=MAX_CHARS)]


class TranslateRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    texts: list[Text] = Field(min_length=1, max_length=MAX_TEXTS, description="source texts")
    num_beams: int | None = Field(
        None, ge=1, le=MAX_BEAMS, description="1 = greedy; omitted = the model's default"
    )
    length_penalty: float = Field(
        1.0, ge=0.0, le=4.0, description="beam score = sum log p / length ** length_penalty"
    )
    max_new_tokens: int = Field(256, ge=1, le=MAX_NEW_TOKENS)
    return_attention: bool = Field(
        False,
        description="add the cross-attention of the last decoder layer, heads averaged",
    )
    attention_heads: bool = Field(
        False,
        description="with return_attention: add every head (`per_head`) beside the mean "
        "(one more matrix per head: 4 for the demo model)",
    )


class Attention(BaseModel):
    layer: int = Field(description="decoder layer (0-based) whose cross-attention this is")
    heads: str = Field("mean", description="how heads are combined in `matrix`")
    matrix: list[list[float]] = Field(description="rows: target tokens; columns: source tokens")
    per_head: list[list[list[float]]] | None = Field(
        None, description="(head, target, source); only with attention_heads"
    )


class TranslationOut(BaseModel):
    text: str
    score: float
    source_tokens: list[str]
    target_tokens: list[str]
    attention: Attention | None = None
    unknown_words: list[str] | None = Field(
        None,
        description="source words the model never saw in training, as written, each once, "
        "in order (case counts, but a sentence may start with a capital; punctuation and "
        "symbols are not words); omitted when the model has no training word list (a real "
        "checkpoint)",
    )


class TranslateResponse(BaseModel):
    translations: list[TranslationOut]


# -- Open Inference Protocol v2 -----------------------------------------------------------
# One call with every text: the same translations as the REST API.

_OPTIONS = ("num_beams", "max_new_tokens", "length_penalty")


def _plan(request: InferRequest) -> list[Call]:
    body = {"texts": texts(request.input("TEXT")), **options(request, _OPTIONS)}
    return [Call("/v1/translate", body)]


def _collect(_calls: list[Call], results: list[dict[str, Any]]) -> list[Tensor]:
    out = results[0]["translations"]
    return [
        bytes_tensor("TRANSLATION", [t["text"] for t in out]),
        Tensor("SCORE", "FP32", np.array([t["score"] for t in out], dtype=np.float32)),
    ]


OIP = ModelSpec(
    "translation",
    (TensorMetadata("TEXT", "BYTES", (-1,)),),
    (TensorMetadata("TRANSLATION", "BYTES", (-1,)), TensorMetadata("SCORE", "FP32", (-1,))),
    {"num_beams": int, "max_new_tokens": int, "length_penalty": (int, float)},
    _plan,
    _collect,
    {"texts": "inputs.TEXT", **{k: f"parameters.{k}" for k in _OPTIONS}},
)

KIND = ModelKind(
    name="translation",
    title="translation: a MarianMT transformer with its attention visible",
    service="services.translation:TranslationService",
    port_offset=11,
    settings=TranslationSettings,
    model="genserve.translation.translator:Translator",
    routes=(
        Route(
            "POST",
            "/v1/translate",
            "Translate 1..64 texts; `return_attention` adds the cross-attention matrix "
            "(`attention_heads`: every head too).",
            TranslateRequest,
            TranslateResponse,
        ),
    ),
    oip=OIP,
    timeout_s=60.0,
    cpu_weight=2.0,
    precisions=("fp32", "int8"),
    export="genserve.translation.export:export",
    train="genserve.translation.train:train",
    bench="genserve.translation.bench:main",
    pull=PullSpec(("*.json", "*.spm", "model.safetensors"), "model.safetensors"),
    example=Example(  # one sentence, greedy: the cheapest request
        "/v1/translate",
        {"texts": ["The cat sleeps."], "num_beams": 1},
        (("TEXT", "BYTES", ("The cat sleeps.",)),),
        {"num_beams": 1},
    ),
)
