"""The translation service started with bentoml on a loopback port, called over HTTP."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from genserve import kinds
from tests.e2e.conftest import Server
from tests.e2e.test_gan_service import _metric
from tests.integration.test_translation_model import without_source_words

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
    assert "per_head" not in att  # the mean only, unless attention_heads
    assert (
        "attention"
        not in translate(translation_server, {"texts": ["Hi."]}).json()["translations"][0]
    )


def test_attention_heads_adds_every_head_beside_the_mean(translation_server: Server) -> None:
    body = {"texts": ["I am a student."], "return_attention": True, "attention_heads": True}
    r = translate(translation_server, body)
    assert r.status_code == 200, r.text
    [t] = r.json()["translations"]
    att = t["attention"]
    heads = np.array(att["per_head"])
    n_heads = httpx.get(f"{translation_server.url}/v1/model").json()["config"]["heads"]
    assert heads.shape == (n_heads, len(t["target_tokens"]), len(t["source_tokens"]))
    np.testing.assert_allclose(heads.mean(axis=0), np.array(att["matrix"]), atol=1e-4)


# 32 sentences of the demo corpus's grammar: the largest batch of the default settings.
TEXTS_32 = [
    f"The {a} didn't cross the {p} because it was too {j}."
    for a in ("animal", "dog", "cat", "horse")
    for p in ("street", "river")
    for j in ("tired", "wide", "old", "long")
]


def test_the_mean_alone_is_a_fraction_of_the_response_with_every_head(
    translation_server: Server,
) -> None:
    body = {"texts": TEXTS_32, "num_beams": 1, "return_attention": True}
    mean = translate(translation_server, body)
    heads = translate(translation_server, {**body, "attention_heads": True})
    assert mean.status_code == heads.status_code == 200, (mean.text, heads.text)
    assert all("per_head" not in t["attention"] for t in mean.json()["translations"])
    assert all("per_head" in t["attention"] for t in heads.json()["translations"])
    ratio = len(heads.content) / len(mean.content)
    print(f"32 texts: mean only {len(mean.content)} bytes, every head {len(heads.content)}")
    assert ratio > 3.5, (len(mean.content), len(heads.content))


def test_unknown_words_are_the_words_training_never_had(translation_server: Server) -> None:
    texts = ["Ich bin müde.", "I am a student.", "The cat didn’t sleep on monday, 3 times!"]
    r = translate(translation_server, {"texts": texts, "num_beams": 1})
    assert r.status_code == 200, r.text
    unknown = [t["unknown_words"] for t in r.json()["translations"]]
    assert unknown == [["Ich", "bin", "müde"], [], ["didn’t", "monday", "3", "times"]]


def test_no_unknown_words_from_a_model_without_a_training_word_list(
    translation_model_dir: Path, tmp_path: Path
) -> None:
    """A folder without source_words.json (a real checkpoint's): the field is omitted."""
    without_source_words(translation_model_dir, tmp_path / "no-words")
    env = {"GENSERVE_MODELS_DIR": str(tmp_path), "GENSERVE_TRANSLATION_MODEL": "no-words"}
    server = Server(kinds.get("translation").service, env, tmp_path / "server.log")
    try:
        r = translate(server, {"texts": ["Ich bin müde."], "num_beams": 1})
        assert r.status_code == 200, r.text
        [t] = r.json()["translations"]
        assert "unknown_words" not in t and t["text"]
    finally:
        server.stop()


def test_concurrent_requests_are_batched_and_unchanged(translation_server: Server) -> None:
    texts = [f"The {a} sees the {b}." for a in ("cat", "dog", "horse") for b in ("bird", "cow")]
    alone = [translate(translation_server, {"texts": [t], "num_beams": 2}).json() for t in texts]
    label = 'model="translation"'
    before = _metric(translation_server, "genserve_batch_size_count", label)
    rows_before = _metric(translation_server, "genserve_batch_size_sum", label)
    with ThreadPoolExecutor(max_workers=6) as pool:
        together = list(
            pool.map(
                lambda t: translate(translation_server, {"texts": [t], "num_beams": 2}).json(),
                texts,
            )
        )
    observed = _metric(translation_server, "genserve_batch_size_count", label) - before
    rows = _metric(translation_server, "genserve_batch_size_sum", label) - rows_before
    assert together == alone
    # Batched means more than one row per observation on average (a batch per call; with
    # GENSERVE_TRANSLATION_ITERATION_BATCHING, per request the rows decoded beside it).
    assert 0 < observed <= len(texts) and rows > observed
    assert _metric(translation_server, "genserve_tokens_total", 'direction="output"') > 0


def test_iteration_batching_decodes_requests_of_every_option_together(
    translation_model_dir: Path, tmp_path: Path
) -> None:
    """GENSERVE_TRANSLATION_ITERATION_BATCHING=true, over HTTP: concurrent requests with
    different options (greedy, 2 and 4 beams, attention, a length cap) join one running
    decode, and each answer equals the one that request gets alone."""
    env = {"GENSERVE_TRANSLATION_ITERATION_BATCHING": "true"}
    server = Server(kinds.get("translation").service, env, tmp_path / "translation.log")
    try:
        texts = [f"The {a} sees the {b}." for a in ("cat", "dog", "horse") for b in ("bird", "cow")]
        bodies = [
            {"texts": texts[:2], "num_beams": 4},
            {"texts": [texts[2]], "num_beams": 1},
            {"texts": texts[3:5], "num_beams": 2, "return_attention": True},
            {"texts": [texts[5]], "num_beams": 1, "max_new_tokens": 4},
            {"texts": texts, "num_beams": 4},
            {"texts": texts[::-1], "num_beams": 1},
        ] * 2
        alone = [translate(server, b).json() for b in bodies[:6]] * 2
        label = 'model="translation"'
        before = _metric(server, "genserve_batch_size_count", label)
        rows_before = _metric(server, "genserve_batch_size_sum", label)
        with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
            together = list(pool.map(lambda b: translate(server, b).json(), bodies))
        # (a request's observation is recorded just after its answer: wait for the last)
        deadline = time.monotonic() + 5
        while (observed := _metric(server, "genserve_batch_size_count", label) - before) < len(
            bodies
        ) and time.monotonic() < deadline:
            time.sleep(0.05)
        most = _metric(server, "genserve_batch_size_sum", label) - rows_before
    finally:
        server.stop()
    for got, want in zip(together, alone, strict=True):
        assert [t["text"] for t in got["translations"]] == [t["text"] for t in want["translations"]]
        for t, w in zip(got["translations"], want["translations"], strict=True):
            assert t["score"] == pytest.approx(w["score"], rel=1e-5)
            if "attention" in w:
                np.testing.assert_allclose(
                    t["attention"]["matrix"], w["attention"]["matrix"], atol=1e-5
                )
    # one observation per request: the most rows it was decoded beside, itself in (so
    # more than its own rows for a request that shared steps)
    assert observed == len(bodies) and most > sum(len(b["texts"]) for b in bodies)


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
    ({"texts": ["ok"], "return_attention": True, "attention_heads": "yes"}, "attention_heads"),
    ({"texts": ["ok"], "return_attention": True, "attention_heads": 1}, "attention_heads"),
    ({"texts": ["ok"], "attention_heads": True}, "attention_heads"),  # needs return_attention
    ({"texts": ["ok"], "attention": "heads"}, "attention"),
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
