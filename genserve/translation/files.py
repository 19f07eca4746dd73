"""The file names of a built translation model folder.

Shared by the runtime (translator, tokenizer) and the export that writes them, so the
runtime never has to import build code to find its own files.
"""

from __future__ import annotations

ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
SOURCE_SPM = "source.spm"
TARGET_SPM = "target.spm"
VOCAB_FILE = "vocab.json"
TOKENIZER_FILES = (SOURCE_SPM, TARGET_SPM, VOCAB_FILE)
SETTINGS_FILE = "translation.json"  # what export.generation_defaults writes
SOURCE_WORDS_FILE = "source_words.json"  # words.py: the source words seen in training
