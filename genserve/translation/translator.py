"""Translation in ONNX Runtime: tokenize, encode once, search, detokenize, show attention.

The cross-attention returned for a target token is the one of the decoder step that
*produced* it (the step whose output distribution chose the token), per layer and head,
over the source tokens. ``attention`` in a Translation averages the heads of one layer
(the last); ``attention_heads`` keeps them all, only when asked for (``Options``).

A model folder with ``source_words.json`` (the demo model) also reports, per text, the
words it never saw in training (``unknown_words``; ``words.py`` has the rules).
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from genserve.artifacts import load_manifest
from genserve.batching import Feed
from genserve.config import RuntimeSettings
from genserve.errors import InvalidInput, ModelIntegrityError
from genserve.limits import MAX_BEAMS, MAX_CHARS, MAX_NEW_TOKENS, MAX_TEXTS
from genserve.runtime import OnnxSession
from genserve.serving import ServedModel
from genserve.translation import words as source_words
from genserve.translation.files import (
    DECODER_FILE,
    ENCODER_FILE,
    SETTINGS_FILE,
    SOURCE_WORDS_FILE,
)
from genserve.translation.search import (
    DecoderState,
    Hypothesis,
    Joiners,
    SearchConfig,
    decode,
    search,
)
from genserve.translation.tokenizer import MarianTokenizer


@dataclass(frozen=True)
class Options:
    """Per-request decoding options; requests with equal options can share a batch."""

    num_beams: int = 1
    length_penalty: float = 1.0
    max_new_tokens: int = 256
    return_attention: bool = False
    attention_heads: bool = False  # with return_attention: every head beside the mean


@dataclass
class Translation:
    text: str
    score: float
    source_tokens: list[str]
    target_tokens: list[str]
    attention: list[list[float]] | None = None  # (target, source): heads averaged, one layer
    attention_layer: int | None = None
    attention_heads: list[list[list[float]]] | None = None  # (heads, target, source)
    unknown_words: list[str] | None = None  # None: the model has no training word list


class Seq2Seq:
    """The encoder and decoder sessions and the search over them (no text, no tokenizer).

    ``config`` holds the ids and sizes that ``export.generation_defaults`` writes.
    """

    def __init__(self, encoder: OnnxSession, decoder: OnnxSession, config: dict[str, Any]) -> None:
        if "log_probs" not in decoder.outputs:  # a folder exported before 2026-12-03
            raise ModelIntegrityError(
                "this translation folder's decoder returns logits, not log-probabilities: "
                "it was exported by an older genserve; export it again (genserve models "
                "export translation)"
            )
        self.encoder, self.decoder, self.config = encoder, decoder, config
        self.layers, self.heads, self.head_dim = (
            config["layers"],
            config["heads"],
            config["head_dim"],
        )

    def empty(self) -> DecoderState:
        """A state with no rows: an iterative search starts from it (rows join later)."""
        e = np.zeros((self.layers, 0, self.heads, 0, self.head_dim), np.float32)
        return DecoderState.start(e, e.copy(), np.zeros((0, 0), np.int64))

    def encode(self, rows: list[list[int]]) -> DecoderState:
        """Run the encoder on right-padded id rows; returns the decoder's initial state."""
        width = max(len(r) for r in rows)
        pad = self.config["pad_token_id"]
        ids = np.array([r + [pad] * (width - len(r)) for r in rows], np.int64)
        mask = np.array([[1] * len(r) + [0] * (width - len(r)) for r in rows], np.int64)
        out = self.encoder.run({"input_ids": ids, "attention_mask": mask})
        return DecoderState.start(out["cross_keys"], out["cross_values"], mask)

    def step(
        self, tokens: np.ndarray, state: DecoderState
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One decoder step: log-probabilities, each row's new key and value (the search's
        step)."""
        out = self._run_step(tokens, state)
        return out["log_probs"], out["new_keys"], out["new_values"]

    def _run_step(self, tokens: np.ndarray, state: DecoderState) -> dict[str, np.ndarray]:
        """One decoder step, every output (the cross-attention too); nothing is kept on
        ``self``, so the attention pass reads what its own step returned."""
        return self.decoder.run(state.feeds(tokens))

    def search_config(self, options: Options) -> SearchConfig:
        c = self.config
        return SearchConfig(
            eos_id=c["eos_token_id"],
            start_id=c["decoder_start_token_id"],
            banned_ids=tuple(c["banned_token_ids"]),
            forced_eos=c["forced_eos_token_id"] is not None,
            num_beams=options.num_beams,
            length_penalty=options.length_penalty,
            max_new_tokens=options.max_new_tokens,
        )

    def generate(
        self, rows: list[list[int]], options: Options, cfg: SearchConfig | None = None
    ) -> list[Hypothesis]:
        """Search for id rows (each ending with eos); one hypothesis per row."""
        state = self.encode(rows)
        cfg = cfg or self.search_config(options)
        return search(self.step, state, cfg)

    def attention(self, rows: list[list[int]], hyps: list[Hypothesis]) -> np.ndarray:
        """Cross-attention (N, L, H, T, S) of each step that produced each generated token,
        recomputed by feeding the chosen tokens back (teacher forcing)."""
        state = self.encode(rows)
        longest = max(len(h.tokens) for h in hyps)
        start = self.config["decoder_start_token_id"]
        inputs = np.array(
            [[start, *h.tokens[:-1]] + [start] * (longest - len(h.tokens)) for h in hyps], np.int64
        )
        steps = []
        for t in range(longest):
            out = self._run_step(inputs[:, t : t + 1], state)
            state.advance(out["new_keys"], out["new_values"])
            steps.append(out["cross_attentions"])  # (L, N, H, S)
        return np.stack(steps, axis=3).transpose(1, 0, 2, 3, 4)


class Translator(ServedModel[Options]):
    """A verified translation model folder (encoder.onnx, decoder.onnx, tokenizer)."""

    def __init__(self, folder: Path, settings: RuntimeSettings, *, verify: bool = True) -> None:
        self.manifest = load_manifest(folder, kind="translation", verify=verify)
        self.config: dict[str, Any] = json.loads(self.manifest.path(SETTINGS_FILE).read_text())
        self.model = Seq2Seq(
            OnnxSession(self.manifest.path(ENCODER_FILE), settings),
            OnnxSession(self.manifest.path(DECODER_FILE), settings),
            self.config,
        )
        c = self.config
        self.tokenizer = MarianTokenizer(folder, pad_id=c["pad_token_id"], eos_id=c["eos_token_id"])
        self.max_source_tokens = min(512, int(c["max_source_tokens"]))
        self.known_words: frozenset[str] | None = None
        if SOURCE_WORDS_FILE in self.manifest.files:
            self.known_words = source_words.read(self.manifest.path(SOURCE_WORDS_FILE))

    @property
    def provider(self) -> str:
        """The execution provider the encoder runs on (the decoder's is chosen alike)."""
        return self.model.encoder.provider

    def describe(self) -> dict[str, Any]:
        """The manifest summary, the decoding defaults and the execution provider."""
        return {**super().describe(), "config": self.config}

    def unknown_words(self, text: str) -> list[str] | None:
        """The words of ``text`` the model never saw in training (as written, each once,
        in order); None when the model folder has no training word list."""
        if self.known_words is None:
            return None
        return source_words.unknown(text, self.known_words)

    # -- validation -----------------------------------------------------------------------

    def check(self, texts: list[str], options: Options) -> list[list[int]]:
        """Validate a request and tokenize it: InvalidInput names the field at fault."""
        if not isinstance(texts, list) or not 1 <= len(texts) <= MAX_TEXTS:
            raise InvalidInput(f"texts must be a list of 1 to {MAX_TEXTS} strings", field="texts")
        if not 1 <= options.num_beams <= MAX_BEAMS:
            raise InvalidInput(f"num_beams must be in [1, {MAX_BEAMS}]", field="num_beams")
        if not 1 <= options.max_new_tokens <= MAX_NEW_TOKENS:
            raise InvalidInput(
                f"max_new_tokens must be in [1, {MAX_NEW_TOKENS}]", field="max_new_tokens"
            )
        if not 0.0 <= options.length_penalty <= 4.0:
            raise InvalidInput("length_penalty must be in [0, 4]", field="length_penalty")
        if options.attention_heads and not options.return_attention:
            raise InvalidInput(
                "attention_heads adds every head to the attention: it needs return_attention: true",
                field="attention_heads",
            )
        ids = []
        for i, text in enumerate(texts):
            field = f"texts.{i}"
            if not isinstance(text, str) or not text.strip():
                raise InvalidInput("each text must be a non-empty string", field=field)
            if len(text) > MAX_CHARS:
                raise InvalidInput(
                    f"text is {len(text)} characters; at most {MAX_CHARS}", field=field
                )
            tokens = self.tokenizer.encode(text)
            if len(tokens) > self.max_source_tokens:
                raise InvalidInput(
                    f"text is {len(tokens)} tokens; at most {self.max_source_tokens}", field=field
                )
            ids.append(tokens)
        return ids

    # -- inference ------------------------------------------------------------------------

    def translate_ids(self, rows: list[list[int]], options: Options) -> list[Translation]:
        """Translate id rows from ``check``, in one batch."""
        return self.translations(rows, self.model.generate(rows, options), options)

    def translations(
        self, rows: list[list[int]], hyps: list[Hypothesis], options: Options
    ) -> list[Translation]:
        """The searched hypotheses of id rows as translations (text, tokens, attention)."""
        attn = self.model.attention(rows, hyps) if options.return_attention else None
        out = []
        eos = self.config["eos_token_id"]
        for i, (row, h) in enumerate(zip(rows, hyps, strict=True)):
            words = [t for t in h.tokens if t != eos]
            tr = Translation(
                text=self.tokenizer.decode(h.tokens),
                score=h.score,
                source_tokens=self.tokenizer.source_tokens(row),
                target_tokens=self.tokenizer.target_tokens(words),
            )
            if attn is not None:
                layer = self.model.layers - 1
                a = attn[i, layer, :, : len(words), : len(row)]
                tr.attention = np.round(a.mean(axis=0), 5).tolist()
                tr.attention_layer = layer
                if options.attention_heads:
                    tr.attention_heads = np.round(a, 5).tolist()
            out.append(tr)
        return out

    def run_batch(self, rows: list[list[int]], options: Options) -> list[Translation]:
        """``translate_ids`` as the batcher calls it: checked id rows of requests that
        share decoding ``options``."""
        return self.translate_ids(rows, options)

    def cost(self, rows: int, options: Options) -> float:
        """Rows times beams, twice that with attention (a second pass over the tokens)."""
        return float(rows * options.num_beams * (2 if options.return_attention else 1))

    def run_iterative(self, feed: Feed) -> None:
        """Iteration-level batching (the batcher's ``iterative`` mode): one decode whose
        rows come and go. Before every decoder step, queued requests join it whatever
        their options (``feed.take``; encoded together, each row searched with its own
        request's options beside the others: search.decode); a request is answered
        (``feed.finish``) as soon as its last row ends."""
        open_: dict[int, tuple[list[list[int]], list[Hypothesis | None], Options]] = {}
        left: dict[int, int] = {}

        def join() -> Joiners | None:
            taken = feed.take(feed.max_rows - feed.rows)
            if not taken:
                return None
            ids: list[Hashable] = []
            rows: list[list[int]] = []
            configs: list[SearchConfig] = []
            for ticket, items, key in taken:
                options = cast(Options, key)
                open_[ticket] = (list(items), [None] * len(items), options)
                left[ticket] = len(items)
                ids += [(ticket, j) for j in range(len(items))]
                rows += items
                configs += [self.model.search_config(options)] * len(items)
            return Joiners(self.model.encode(rows), ids, configs)

        def done(row: Hashable, hyp: Hypothesis) -> None:
            ticket, j = cast(tuple[int, int], row)
            open_[ticket][1][j] = hyp
            left[ticket] -= 1
            if left[ticket] == 0:
                rows, hyps, options = open_.pop(ticket)
                del left[ticket]
                feed.finish(ticket, self.translations(rows, cast(list[Hypothesis], hyps), options))

        decode(self.model.step, self.model.empty(), join, done)

    def translate(self, texts: list[str], options: Options | None = None) -> list[Translation]:
        """Validate, tokenize and translate ``texts`` in one batch."""
        options = options or Options()
        out = self.translate_ids(self.check(texts, options), options)
        for text, tr in zip(texts, out, strict=True):
            tr.unknown_words = self.unknown_words(text)
        return out
