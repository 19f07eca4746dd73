"""genserve.translation.words: which words of a text the demo model never saw."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genserve.errors import ModelIntegrityError
from genserve.translation import words
from genserve.translation.export import training_vocabulary

KNOWN = frozenset(["I", "am", "a", "student", "The", "the", "cat", "cats", "sleep", "sleeps"])
KNOWN |= {"Monday", "didn't", "on"}


@pytest.mark.parametrize(
    ("text", "unknown"),
    [
        ("Ich bin müde.", ["Ich", "bin", "müde"]),
        ("I am a student.", []),
        ("Ich bin müde, ich bin MÜDE!", ["Ich", "bin", "müde", "ich", "MÜDE"]),  # each once
        ("The cat sleeps on Monday.", []),
        ("the cat sleeps on monday.", ["monday"]),  # case counts, as for the model
        ("i am a student.", ["i"]),
        ("THE CAT sleeps.", ["THE", "CAT"]),
        ("Cats sleep. Cat sleeps! Cats?", []),  # a sentence may start with a capital
        ("The Cat sleeps.", ["Cat"]),  # ... elsewhere a capital is another word
        ("The cat didn't sleep.", []),
        ("The cat didn’t sleep.", ["didn’t"]),  # a typographic apostrophe: unseen
        ("'The cat' -- sleeps; (the cat) sleeps?", []),  # punctuation is not a word
        ("The well-known cat", ["well", "known"]),  # hyphens separate words
        ("I am 3 cats 🙂 ☃", ["3"]),  # digits are words, symbols are not
        ("The cat sleeps mu\u0308de müde", ["müde"]),  # compared in NFC
        ("snake_case", ["snake", "case"]),
    ],
)
def test_unknown_words(text: str, unknown: list[str]) -> None:
    assert words.unknown(text, KNOWN) == unknown


def test_vocabulary_is_every_word_once_sorted() -> None:
    assert words.vocabulary(["The cat sleeps.", "The cats didn't sleep!"]) == [
        "The",
        "cat",
        "cats",
        "didn't",
        "sleep",
        "sleeps",
    ]


def test_the_training_vocabulary_covers_the_corpus_and_round_trips(tmp_path: Path) -> None:
    from genserve.translation.corpus import generate

    doc = training_vocabulary({"seed": 3, "corpus_pairs": 2_000})
    assert (doc["corpus"], doc["seed"], doc["pairs"]) == (words.CORPUS, 3, 2_000)
    words.write(tmp_path / "w.json", doc)
    known = words.read(tmp_path / "w.json")
    corpus = generate(3, n_train=2_000)
    assert all(words.unknown(p.en, known) == [] for p in corpus.train)
    assert words.unknown("Ich bin müde.", known) == ["Ich", "bin", "müde"]


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        json.dumps({"format": "other", "words": []}),
        json.dumps({"format": words.FORMAT}),
        json.dumps({"format": words.FORMAT, "words": "cat"}),
        json.dumps({"format": words.FORMAT, "words": [1, 2]}),
    ],
)
def test_a_malformed_word_list_is_refused(tmp_path: Path, content: str) -> None:
    (tmp_path / "w.json").write_text(content)
    with pytest.raises(ModelIntegrityError, match="source word list"):
        words.read(tmp_path / "w.json")
