"""The int8 translation model (``genserve models export translation --precision int8``)
against the float32 one it was quantized from: the quality gates of int8.

Both are the demo model, built by ``make models`` (build/models/translation and
translation-int8), served by the same code. Gates: held-out sacreBLEU within 0.5 of
float32, greedy tokens identical on at least 95% of held-out sentences, il/elle
unchanged on every held-out coreference sentence and the deck's sentences.
"""

from __future__ import annotations

import pytest
import sacrebleu

from genserve.artifacts import load_manifest
from genserve.translation.corpus import generate
from genserve.translation.translator import Options, Translator
from tests.conftest import built, load_model


@pytest.fixture(scope="module")
def corpus():
    return generate(0)


@pytest.fixture(scope="module")
def int8() -> Translator:
    model = load_model("translation", "translation-int8")
    assert isinstance(model, Translator)
    return model


def _translate(model: Translator, texts: list[str], options: Options) -> list:
    out = []
    for i in range(0, len(texts), 64):
        out += model.translate(texts[i : i + 64], options)
    return out


def test_the_manifest_says_int8_and_the_weights_are_int8(int8: Translator) -> None:
    import onnx

    manifest = load_manifest(built("translation-int8"), kind="translation")
    assert manifest.config["precision"] == "int8"
    assert manifest.source["quantization"]["weights"] == "int8 per channel, 7-bit range"
    assert manifest.source["quantization"]["activations"] == "uint8 per row"
    assert load_manifest(built("translation"), kind="translation").config["precision"] == "fp32"
    graph = onnx.load(str(manifest.path("decoder.onnx")), load_external_data=False).graph
    ops = {n.op_type for n in graph.node}
    assert "MatMulIntegerToFloat" in ops and "DynamicQuantizeLinear" not in ops, sorted(ops)
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 3 * 4  # every projection of every decoder layer at least


@pytest.mark.parametrize("beams", [1, 4])
def test_a_sentence_does_not_depend_on_its_batch(int8: Translator, corpus, beams: int) -> None:
    """Activations are quantized per row (genserve.exporting.quantize_per_row): with one
    scale for the whole batch, a sentence's score changed with its company by about 1e-4
    (and near a tie its tokens could). Padding to the batch's longest sentence changes
    float32's own sums in the last bits (up to 8e-7 here, float32 model too)."""
    texts = [p.en for p in corpus.heldout[:12]]
    options = Options(num_beams=beams)
    together = int8.translate(texts, options)
    alone = [int8.translate([t], options)[0] for t in texts]
    assert [t.target_tokens for t in together] == [t.target_tokens for t in alone]
    assert max(abs(a.score - b.score) for a, b in zip(together, alone, strict=True)) < 1e-5


def test_greedy_tokens_agree_and_bleu_holds(translation_model, int8: Translator, corpus) -> None:
    texts = [p.en for p in corpus.heldout]
    greedy = Options(num_beams=1)
    ref = _translate(translation_model, texts, greedy)
    got = _translate(int8, texts, greedy)
    same = sum(a.target_tokens == b.target_tokens for a, b in zip(ref, got, strict=True))
    truth = [[p.fr for p in corpus.heldout]]
    bleu_fp32 = sacrebleu.corpus_bleu([t.text for t in ref], truth).score
    bleu_int8 = sacrebleu.corpus_bleu([t.text for t in got], truth).score
    print(
        f"int8 greedy: {same}/{len(texts)} token-identical to fp32; held-out sacreBLEU "
        f"fp32 {bleu_fp32:.2f}, int8 {bleu_int8:.2f}"
    )
    assert len(texts) >= 1000
    assert same / len(texts) >= 0.95
    assert bleu_int8 >= bleu_fp32 - 0.5


def test_il_elle_unchanged(translation_model, int8: Translator, corpus) -> None:
    pairs = corpus.heldout_coreference
    texts = [p.en for p in pairs] + [
        "The animal didn't cross the street because it was too tired.",
        "The animal didn't cross the street because it was too wide.",
    ]
    ref = _translate(translation_model, texts, Options())
    got = _translate(int8, texts, Options())

    def pronoun(text: str) -> str:
        return "elle" if "qu'elle" in text else "il" if "qu'il" in text else "?"

    changed = [
        (t, a.text, b.text)
        for t, a, b in zip(texts, ref, got, strict=True)
        if pronoun(a.text) != pronoun(b.text)
    ]
    assert len(texts) >= 400 and changed == []
    assert "parce qu'elle" in got[-1].text and "parce qu'il" in got[-2].text
