"""The exported Marian model against transformers, and the demo model's quality."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sacrebleu

from genserve.artifacts import MANIFEST_NAME, load_manifest, write_manifest
from genserve.config import PROJECT_ROOT, RuntimeSettings
from genserve.errors import InvalidInput, ModelIntegrityError
from genserve.translation.corpus import generate
from genserve.translation.files import SOURCE_WORDS_FILE
from genserve.translation.translator import Options, Translator
from tests.conftest import WEIGHTS_DIR

SOURCE = WEIGHTS_DIR / "translation"


def without_source_words(built: Path, out: Path) -> Path:
    """``built`` as a real checkpoint's folder would be: no source_words.json (links to the
    other files, a manifest without it)."""
    m = load_manifest(built, kind="translation")
    out.mkdir(parents=True)
    files = [f for f in m.files if f != SOURCE_WORDS_FILE]
    for f in files:
        (out / f).symlink_to((built / f).resolve())
    write_manifest(
        out,
        kind=m.kind,
        name=m.name,
        files=files,
        inputs=m.inputs,
        outputs=m.outputs,
        config=m.config,
        source=m.source,
        recipe=m.recipe,
    )
    assert not (out / SOURCE_WORDS_FILE).exists() and (out / MANIFEST_NAME).is_file()
    return out


@pytest.fixture(scope="module")
def corpus():
    return generate(0)


@pytest.fixture(scope="module")
def hf():
    import torch
    from transformers import MarianMTModel, MarianTokenizer

    torch.set_num_threads(2)
    model = MarianMTModel.from_pretrained(str(SOURCE), dtype=torch.float32).eval()
    return model, MarianTokenizer.from_pretrained(str(SOURCE))


def _hf_generate(hf, texts: list[str], beams: int) -> list[list[int]]:
    import torch

    model, tok = hf
    out: list[list[int]] = []
    for i in range(0, len(texts), 50):
        batch = tok(texts[i : i + 50], return_tensors="pt", padding=True)
        with torch.inference_mode():
            ids = model.generate(**batch, num_beams=beams, do_sample=False, max_new_tokens=128)
        for row in ids.tolist():
            row = row[1:]
            out.append(row[: row.index(1) + 1] if 1 in row else row)
    return out


def test_tokenizer_matches_transformers(translation_model, hf, corpus) -> None:
    _, tok = hf
    texts = [p.en for p in corpus.heldout[:300]] + ["Hello 🙂 wörld, qwxz!", ">>fr<< I am a cat."]
    for text in texts:
        assert translation_model.tokenizer.encode(text) == tok(text).input_ids, text
    fr = [p.fr for p in corpus.heldout[:100]]
    for text in fr:
        ids = translation_model.tokenizer.encode(text)
        assert translation_model.tokenizer.decode(ids) == tok.decode(ids, skip_special_tokens=True)


@pytest.mark.parametrize(("beams", "at_least"), [(1, 200), (4, 196)])
def test_search_is_token_identical_to_transformers(translation_model, hf, corpus, beams, at_least):
    """Greedy: all 200 held-out sentences; beam 4: at least 98% of them."""
    texts = [p.en for p in corpus.heldout[:200]]
    rows = [translation_model.tokenizer.encode(t) for t in texts]
    ours = translation_model.model.generate(rows, Options(num_beams=beams, max_new_tokens=128))
    ref = _hf_generate(hf, texts, beams=beams)
    same = sum(h.tokens == r for h, r in zip(ours, ref, strict=True))
    print(f"beams {beams}: {same}/200 token-identical to transformers")
    assert same >= at_least


def test_bleu_on_the_held_out_set(translation_model, corpus) -> None:
    texts = [p.en for p in corpus.heldout]
    hyps = []
    for i in range(0, len(texts), 64):
        hyps += [t.text for t in translation_model.translate(texts[i : i + 64])]
    bleu = sacrebleu.corpus_bleu(hyps, [[p.fr for p in corpus.heldout]]).score
    exact = sum(h == p.fr for h, p in zip(hyps, corpus.heldout, strict=True))
    print(f"held-out sacreBLEU {bleu:.2f}, exact {exact}/{len(hyps)} (default beam 4)")
    assert len(hyps) >= 1000 and bleu >= 99 and exact / len(hyps) >= 0.99
    # The structures added for it: a plural only the verb shows, two adjectives.
    hard = [(h, p) for h, p in zip(hyps, corpus.heldout, strict=True) if p.template in HARD]
    right = sum(h == p.fr for h, p in hard)
    print(f"held-out number-by-verb and two-adjective sentences: exact {right}/{len(hard)}")
    assert len(hard) >= 100 and right / len(hard) >= 0.97


HARD = ("number", "adjectives")


@pytest.mark.parametrize(
    ("english", "french"),
    [
        ("The sheep sleep in the field.", "Les moutons dorment dans le champ."),
        ("The sheep sleeps in the field.", "Le mouton dort dans le champ."),
        ("The fish swim in the lake.", "Les poissons nagent dans le lac."),
        ("I see a beautiful old hotel.", "Je vois un beau vieil hôtel."),
        ("The beautiful old hotel is empty.", "Le beau vieil hôtel est vide."),
        ("He goes to the hospital.", "Il va à l'hôpital."),
        ("They arrived at the airport.", "Ils sont arrivés à l'aéroport."),
        ("The cat sleeps near the hotel.", "Le chat dort près de l'hôtel."),
        ("Do eight dogs sleep?", "Est-ce que huit chiens dorment ?"),
        ("Is the hero tired?", "Est-ce que le héros est fatigué ?"),
    ],
)
def test_the_sentences_a_careful_user_tried(translation_model, english, french) -> None:
    """Plurals only the verb shows, two adjectives before the noun, elision before
    contraction, no elision before huit or an h aspiré (issue 16's examples)."""
    assert translation_model.translate([english])[0].text == french


def test_the_decks_sentences(translation_model) -> None:
    out = translation_model.translate(["I am a student."])[0]
    assert out.text == "Je suis étudiant."


@pytest.mark.parametrize(
    ("adjective", "pronoun", "antecedent"), [("tired", "il", "animal"), ("wide", "elle", "street")]
)
def test_it_is_resolved_and_attention_shows_where(
    translation_model, adjective, pronoun, antecedent
):
    text = f"The animal didn't cross the street because it was too {adjective}."
    out = translation_model.translate([text], Options(return_attention=True))[0]
    assert f"parce qu'{pronoun} était trop" in out.text, out.text
    step = out.target_tokens.index(f"▁{pronoun}" if f"▁{pronoun}" in out.target_tokens else pronoun)
    row = np.array(out.attention)[step]
    peak = out.source_tokens[int(row.argmax())]
    assert peak.strip("▁") == antecedent, (peak, out.source_tokens, row.round(2))


def test_held_out_coreference_over_unseen_noun_pairs(translation_model, corpus) -> None:
    pairs = corpus.heldout_coreference
    hyps = []
    for i in range(0, len(pairs), 64):
        hyps += [t.text for t in translation_model.translate([p.en for p in pairs[i : i + 64]])]
    right = sum(("qu'elle" in p.fr) == ("qu'elle" in h) for p, h in zip(pairs, hyps, strict=True))
    print(f"il/elle right on {right}/{len(pairs)} held-out coreference sentences")
    assert right / len(pairs) >= 0.9


def test_attention_is_the_mean_unless_every_head_is_asked_for(translation_model) -> None:
    text = "The animal didn't cross the street because it was too tired."
    mean = translation_model.translate([text], Options(return_attention=True))[0]
    assert mean.attention is not None and mean.attention_heads is None
    both = Options(return_attention=True, attention_heads=True)
    heads = translation_model.translate([text], both)[0]
    per_head = np.array(heads.attention_heads)
    shape = (translation_model.model.heads, len(heads.target_tokens), len(heads.source_tokens))
    assert per_head.shape == shape
    assert heads.attention == mean.attention
    np.testing.assert_allclose(per_head.mean(axis=0), np.array(mean.attention), atol=1e-4)


def test_unknown_words_are_reported_and_none_for_the_corpus(translation_model, corpus) -> None:
    assert SOURCE_WORDS_FILE in translation_model.manifest.files  # sha256-verified
    out = translation_model.translate(["Ich bin müde.", "I am a student."])
    assert [t.unknown_words for t in out] == [["Ich", "bin", "müde"], []]
    texts = [p.en for p in corpus.train[:2000:40]] + [p.en for p in corpus.heldout[:50]]
    assert all(translation_model.unknown_words(t) == [] for t in texts)
    # Case counts, as it does for the model, but a sentence may start with a capital.
    assert translation_model.unknown_words("THE CAT sleeps. Cats sleep.") == ["THE", "CAT"]


def test_no_unknown_words_without_a_training_word_list(
    translation_model_dir: Path, tmp_path: Path
) -> None:
    folder = without_source_words(translation_model_dir, tmp_path / "no-words")
    model = Translator(folder, RuntimeSettings())
    assert model.known_words is None
    [out] = model.translate(["Ich bin müde."], Options(num_beams=1))
    assert out.unknown_words is None and out.text


def test_unknown_words_and_emoji_do_not_crash(translation_model) -> None:
    out = translation_model.translate(["The 🐈 zorblax didn't cross the ☃ because it was too 💤."])
    assert isinstance(out[0].text, str)


@pytest.mark.parametrize(
    ("texts", "options", "field"),
    [
        ([""], Options(), "texts.0"),
        (["   "], Options(), "texts.0"),
        (["a" * 10_000], Options(), "texts.0"),
        (["ok"] * 65, Options(), "texts"),
        ([], Options(), "texts"),
        ([3], Options(), "texts.0"),
        (["ok"], Options(num_beams=0), "num_beams"),
        (["ok"], Options(num_beams=99), "num_beams"),
        (["ok"], Options(max_new_tokens=0), "max_new_tokens"),
        (["ok"], Options(max_new_tokens=10_000), "max_new_tokens"),
        (["ab " * 600], Options(), "texts.0"),
        (["ok"], Options(attention_heads=True), "attention_heads"),
    ],
)
def test_bad_input_names_the_field(translation_model, texts, options, field) -> None:
    with pytest.raises(InvalidInput) as info:
        translation_model.check(texts, options)
    assert info.value.field == field


def test_export_refuses_tampering_and_a_parity_miss(tmp_path: Path) -> None:
    from genserve.errors import ExportError
    from genserve.translation.export import export

    with pytest.raises(ExportError, match="differ by"):
        export(SOURCE, tmp_path / "miss", tolerance=0.0)
    assert not list((tmp_path / "miss").glob("*.onnx"))
    report = export(SOURCE, tmp_path / "ok")
    assert report["parity_max_abs"] <= 1e-4
    assert SOURCE_WORDS_FILE in load_manifest(tmp_path / "ok").files
    words_file = tmp_path / "ok" / SOURCE_WORDS_FILE
    exported = words_file.read_bytes()
    words_file.write_bytes(exported.replace(b'"Ich"', b'"I"').replace(b'"cat"', b'"Ich"'))
    with pytest.raises(ModelIntegrityError, match=r"source_words\.json"):
        Translator(tmp_path / "ok", RuntimeSettings())
    words_file.write_bytes(exported)
    with (tmp_path / "ok" / "vocab.json").open("a") as f:
        f.write(" ")
    with pytest.raises(ModelIntegrityError, match=r"vocab\.json"):
        Translator(tmp_path / "ok", RuntimeSettings())


def test_a_logits_bias_is_exported_only_where_a_checkpoint_has_one(tmp_path: Path) -> None:
    """Marian's ``final_logits_bias`` is zero in opus-mt's and the demo's checkpoints, and
    the step graph leaves its add out; one that is not zero is kept, and parity holds."""
    import onnx
    import torch

    from genserve.translation.export import export_graphs, load_marian

    adds = {}
    for name, bias in (("zero", 0.0), ("biased", 0.5)):
        model = load_marian(SOURCE)
        with torch.no_grad():
            model.final_logits_bias.copy_(bias * torch.randn_like(model.final_logits_bias))
        assert export_graphs(model, tmp_path / name)["parity_max_abs"] <= 1e-4
        graph = onnx.load(str(tmp_path / name / "decoder.onnx")).graph
        adds[name] = sum(node.op_type == "Add" for node in graph.node)
    assert adds["biased"] == adds["zero"] + 1


def test_translation_service_imports_no_torch(translation_model_dir: Path) -> None:
    code = (
        "import sys; from pathlib import Path\n"
        "import services.translation\n"
        "from genserve.config import RuntimeSettings\n"
        "from genserve.translation.translator import Translator\n"
        f"Translator(Path({str(translation_model_dir)!r}), RuntimeSettings()).translate(['Hi.'])\n"
        "heavy = ('torch', 'transformers', 'ctranslate2')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in heavy]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, check=True)


class ScriptedFeed:
    """The batcher's Feed as an iterative call sees it, with requests arriving at chosen
    decoder steps (``arrivals``: step -> requests, each its id rows and its options)."""

    def __init__(self, arrivals: dict[int, list[tuple[list[list[int]], Options]]]) -> None:
        self.arrivals, self.step, self.rows, self.max_rows = arrivals, 0, 0, 64
        self.sizes: dict[int, int] = {}
        self.results: dict[int, list] = {}
        self.finished_at: dict[int, int] = {}

    def take(self, room: int) -> list[tuple[int, list[list[int]], Options]]:
        out = []
        for rows, options in self.arrivals.get(self.step, []):
            ticket = len(self.sizes)
            self.sizes[ticket] = len(rows)
            self.rows += len(rows)
            out.append((ticket, rows, options))
        self.step += 1
        return out

    def finish(self, ticket: int, results: list) -> None:
        self.rows -= self.sizes[ticket]
        self.results[ticket] = results
        self.finished_at[ticket] = self.step


@pytest.mark.parametrize("beams", [1, 4, "mixed"])
def test_requests_that_join_a_running_search_get_what_they_get_alone(
    translation_model, corpus, beams
) -> None:
    """Iteration-level batching: requests join the decode at later decoder steps (their
    rows padded into it) and leave as they finish; each gets exactly the translations
    (text, tokens) it gets alone, and its scores within float32 rounding (a longer source
    beside a row changes ONNX Runtime's summation order, as in any batch). "mixed": the
    requests' options differ (greedy, 2 and 4 beams, attention, a length cap) and they
    share the decoder steps all the same."""
    texts = [p.en for p in corpus.heldout[:14]]
    rows = [translation_model.tokenizer.encode(t) for t in texts]
    parts = [rows[0:4], rows[4:5], rows[5:8], rows[8:9], rows[9:10], rows[10:14]]
    if beams == "mixed":
        choices = [
            Options(num_beams=4),
            Options(num_beams=1),
            Options(num_beams=2, return_attention=True),
            Options(num_beams=1, max_new_tokens=5),
            Options(num_beams=4, return_attention=True),
            Options(num_beams=1),
        ]
    else:
        choices = [Options(num_beams=int(beams))] * len(parts)
    requests = list(zip(parts, choices, strict=True))
    feed = ScriptedFeed({0: requests[:2], 1: [requests[2]], 3: [requests[3]], 7: requests[4:]})
    translation_model.run_iterative(feed)
    assert sorted(feed.results) == list(range(len(requests)))
    for ticket, (request, options) in enumerate(requests):
        alone = translation_model.translate_ids(request, options)
        got = feed.results[ticket]
        assert [(t.text, t.target_tokens) for t in got] == [
            (t.text, t.target_tokens) for t in alone
        ], ticket
        assert [t.score for t in got] == pytest.approx([t.score for t in alone], rel=1e-5)
        if options.return_attention:
            for t, t_alone in zip(got, alone, strict=True):
                np.testing.assert_allclose(t.attention, t_alone.attention, atol=1e-5)
    # each request left when it was done, not when the whole batch was
    assert min(feed.finished_at.values()) < max(feed.finished_at.values())
