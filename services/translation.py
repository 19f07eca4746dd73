"""Translation service: a MarianMT transformer in ONNX Runtime, with its attention visible.

POST /v1/translate  1..64 texts per request; greedy or beam search; optional cross-attention
                    (heads averaged; every head on request); the words the model never saw
GET  /v1/model      the loaded model: manifest summary, decoding defaults, provider

Texts of concurrent requests with the same decoding options are batched together; with
GENSERVE_TRANSLATION_ITERATION_BATCHING=true at the level of decoder steps: a request
that arrives while others decode joins them at the next step, whatever its options
(greedy beside beam searches), and each request is answered as soon as its own texts are
done (off by default: BENCHMARKS.md).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import Any, cast

import bentoml

from genserve.metrics import TOKENS
from genserve.translation.api import (
    KIND,
    Attention,
    TranslateRequest,
    TranslateResponse,
    TranslationOut,
    TranslationSettings,
)
from genserve.translation.translator import Options, Translator
from services.base import ModelService, service_config
from services.fastpath import serve_fast
from services.wire import Limits, create_app

log = logging.getLogger("genserve.translation")

limits = Limits()
app = create_app(
    "genserve translation",
    "MarianMT translation served from ONNX Runtime. Errors: "
    '{"error": {"code", "message", "field", "request_id"}}.',
    limits,
)


@bentoml.service(**service_config(KIND.name, KIND.timeout_s))
@bentoml.asgi_app(app, path="/v1")
class TranslationService(ModelService[Translator]):
    kind_name = "translation"
    limits = limits

    @property
    def iterative(self) -> bool:
        return cast(TranslationSettings, self.settings).iteration_batching

    def run_iterative(self, feed: Any, key: Hashable) -> None:
        """Iteration-level batching: requests join the running decode between decoder
        steps, whatever their options, and leave it as they finish
        (Translator.run_iterative; ``key`` is the first request's, each carries its own)."""
        self.working_model.run_iterative(feed)

    @app.post("/translate", response_model=TranslateResponse, response_model_exclude_none=True)
    async def translate(self, req: TranslateRequest) -> TranslateResponse:
        """Translate every text. The same request always gives the same translations."""
        model = self.served  # before the wait: a drain must not fail work already taken
        options = Options(
            num_beams=req.num_beams or int(model.config["num_beams"]),
            length_penalty=req.length_penalty,
            max_new_tokens=req.max_new_tokens,
            return_attention=req.return_attention,
            attention_heads=req.attention_heads,
        )
        rows = model.check(req.texts, options)
        unknown = [model.unknown_words(text) for text in req.texts]
        results = await self.batcher.submit(rows, key=options)
        TOKENS.labels(self.model, "input").inc(sum(len(r) for r in rows))
        TOKENS.labels(self.model, "output").inc(sum(len(t.target_tokens) + 1 for t in results))
        return TranslateResponse(
            translations=[_out(t, u) for t, u in zip(results, unknown, strict=True)]
        )

    @app.get("/model")
    async def model_info(self) -> dict[str, Any]:
        """The served model's manifest summary, decoding defaults and provider."""
        return self.describe()


def _out(t: Any, unknown_words: list[str] | None) -> TranslationOut:
    attention = None
    if t.attention is not None:
        attention = Attention(
            layer=t.attention_layer, matrix=t.attention, per_head=t.attention_heads
        )
    return TranslationOut(
        text=t.text,
        score=t.score,
        source_tokens=t.source_tokens,
        target_tokens=t.target_tokens,
        attention=attention,
        unknown_words=unknown_words,
    )


serve_fast(TranslationService, app, limits)
