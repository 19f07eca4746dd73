"""A Marian tokenizer without transformers: sentencepiece pieces mapped through vocab.json.

Encoding matches ``transformers.MarianTokenizer`` without the optional Moses punctuation
normaliser: a ``>>xx<<`` language code is kept as one token, the text is split into
pieces by ``source.spm``, each piece is looked up in ``vocab.json`` (unknown pieces
become ``<unk>``) and ``</s>`` is appended. Decoding maps ids back to pieces, drops the
special tokens and joins the pieces with ``target.spm``.
"""

from __future__ import annotations

import json
from pathlib import Path

import sentencepiece as spm

from genserve.translation.files import SOURCE_SPM, TARGET_SPM, VOCAB_FILE


class MarianTokenizer:
    def __init__(self, folder: Path, *, pad_id: int, eos_id: int) -> None:
        self.source = spm.SentencePieceProcessor(model_file=str(folder / SOURCE_SPM))
        self.target = spm.SentencePieceProcessor(model_file=str(folder / TARGET_SPM))
        self.vocab: dict[str, int] = json.loads((folder / VOCAB_FILE).read_text())
        self.pieces = {i: p for p, i in self.vocab.items()}
        self.unk_id = self.vocab["<unk>"]
        self.pad_id, self.eos_id = pad_id, eos_id
        self.special = {pad_id, eos_id, self.unk_id}

    def pieces_of(self, text: str) -> list[str]:
        """Source pieces of ``text`` (a leading ``>>xx<<`` language code kept whole)."""
        code: list[str] = []
        if text.startswith(">>") and (end := text.find("<<")) != -1:
            code, text = [text[: end + 2]], text[end + 2 :]
        return code + list(self.source.encode(text, out_type=str))

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, ending with ``</s>``."""
        return [self.vocab.get(p, self.unk_id) for p in self.pieces_of(text)] + [self.eos_id]

    def source_tokens(self, ids: list[int]) -> list[str]:
        """Readable source pieces for ``ids`` (what an attention matrix's columns are)."""
        return [self.pieces.get(i, "<unk>") for i in ids]

    def target_tokens(self, ids: list[int]) -> list[str]:
        return [self.pieces.get(i, "<unk>") for i in ids]

    def decode(self, ids: list[int]) -> str:
        """Text of generated ``ids``; special tokens are dropped."""
        pieces = [self.pieces[i] for i in ids if i not in self.special and i in self.pieces]
        return str(self.target.decode_pieces(pieces)).replace("▁", " ").strip()
