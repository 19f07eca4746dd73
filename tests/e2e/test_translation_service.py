"""The translation service started with bentoml on a loopback port, called over HTTP."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.e2e.conftest import Server
from tests.e2e.test_gan_service import _metric

pytestmark = pytest.mark.e2e


def translate(server: Server, body: object) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/translate", json=body, timeout=60)


def test_translate_with_attention(translation_server: Server) -> None:
    r = translate(translation_server, {"texts": ["I am a student."], "return_attention": True})
    assert r.status_code == 200, r.text
    [t] = r.json()["translations"]
    assert t["text"] == "Je suis étudiant."
    att = t["attention"]
    assert att["heads"] == "mean" and att["layer"] >= 0
    assert len(att["matrix"]) == len(t["target_tokens"])
    assert all(len(row) == len(t["source_tokens"]) for row in att["matrix"])
    assert all(abs(sum(row) - 1) < 1e-3 for row in att["matrix"])
    assert (
        "attention"
        not in translate(translation_server, {"texts": ["Hi."]}).json()["translations"][0]
    )


def test_concurrent_requests_are_batched_and_unchanged(translation_server: Server) -> None:
    texts = [f"The {a} sees the {b}." for a in ("cat", "dog", "horse") for b in ("bird", "cow")]
    alone = [translate(translation_server, {"texts": [t], "num_beams": 2}).json() for t in texts]
    before = _metric(translation_server, "genserve_batch_size_count", 'model="translation"')
    with ThreadPoolExecutor(max_workers=6) as pool:
        together = list(
            pool.map(
                lambda t: translate(translation_server, {"texts": [t], "num_beams": 2}).json(),
                texts,
            )
        )
    calls = _metric(translation_server, "genserve_batch_size_count", 'model="translation"') - before
    assert together == alone
    assert calls < len(texts)
    assert _metric(translation_server, "genserve_tokens_total", 'direction="output"') > 0


BAD = [
    ({"texts": [""]}, "texts.0"),
    ({"texts": ["x" * 10_000]}, "texts.0"),
    ({"texts": ["ok"] * 65}, "texts"),
    ({"texts": [42]}, "texts.0"),
    ({"texts": "not a list"}, "texts"),
    ({}, "texts"),
    ({"texts": ["ok"], "num_beams": 0}, "num_beams"),
    ({"texts": ["ok"], "num_beams": 99}, "num_beams"),
    ({"texts": ["ok"], "max_new_tokens": 0}, "max_new_tokens"),
    ({"texts": ["ok"], "max_new_tokens": 10_000}, "max_new_tokens"),
    ({"texts": ["   "]}, "texts.0"),
    ({"texts": ["ab " * 700]}, "texts.0"),
]


@pytest.mark.parametrize(("body", "field"), BAD)
def test_bad_input_is_a_4xx_naming_the_field(translation_server: Server, body, field) -> None:
    r = translate(translation_server, body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == field


def test_emoji_and_unknown_words(translation_server: Server) -> None:
    r = translate(translation_server, {"texts": ["🙂 Zorblax qwxz ☃?", "The cat is black."]})
    assert r.status_code == 200
    assert r.json()["translations"][1]["text"] == "Le chat est noir."
