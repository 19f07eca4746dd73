"""Source words the demo model saw in training, and the words of a text it never saw.

The export writes ``source_words.json`` (``files.SOURCE_WORDS_FILE``) into a model folder
built from genserve's generated corpus: every word of the English side of the training
pairs, regenerated from the recipe's seed and size. Real checkpoints (the hub's opus-mt
models) have no such list, and their translations report no unknown words.

A word is a run of letters and digits, apostrophes inside it included (``didn't``);
spaces, punctuation, hyphens and symbols (emoji) separate words and are never words
themselves. Words are compared as written (Unicode NFC), case included, because the
model reads them so: "CAT", "i", "monday" and "didn’t" (a typographic apostrophe) are
unknown when training only had "cat", "I", "Monday" and "didn't", and the model's
translations of them are guesses. One allowance: a sentence's first word (the text's,
or one after ``.``, ``!`` or ``?``) may have its first letter capitalised ("Cats sleep."
when training had "cats"). Unknown words are reported as written, each once, in order of
first appearance.

Pure Python: the service imports it without a model runtime.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from genserve.errors import ModelIntegrityError

FORMAT = "genserve-source-words/1"
CORPUS = "genserve.translation.corpus"  # the ``source.corpus`` of a trained demo folder
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
_SENTENCE_END = re.compile(r"[.!?]")


def _words(text: str) -> Iterator[tuple[str, bool]]:
    """Each word of ``text`` (NFC) and whether it starts a sentence."""
    text = unicodedata.normalize("NFC", text)
    end = 0
    for m in _WORD.finditer(text):
        yield m.group(), end == 0 or bool(_SENTENCE_END.search(text, end, m.start()))
        end = m.end()


def words(text: str) -> list[str]:
    """The words of ``text`` as written (NFC), in order, repeats kept."""
    return [w for w, _ in _words(text)]


def unknown(text: str, known: frozenset[str]) -> list[str]:
    """The words of ``text`` not in ``known`` (see the module's rules): as written, each
    once, in order of first appearance."""
    out: dict[str, None] = {}  # ordered, each once
    for word, first in _words(text):
        if word in known or word in out:
            continue
        if first and word[0].isupper() and word[0].lower() + word[1:] in known:
            continue
        out[word] = None
    return list(out)


def vocabulary(texts: Iterable[str]) -> list[str]:
    """Every word of ``texts``, once, sorted."""
    return sorted({w for text in texts for w in words(text)})


def write(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")


def read(path: Path) -> frozenset[str]:
    """The known words of a ``source_words.json``; ModelIntegrityError if malformed."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != FORMAT:
            raise ValueError(f"format is {doc.get('format')!r}, expected {FORMAT!r}")
        known = doc["words"]
        if not isinstance(known, list) or not all(isinstance(w, str) for w in known):
            raise ValueError("words must be a list of strings")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelIntegrityError(f"malformed source word list {path}: {exc}") from exc
    return frozenset(known)
