from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from genserve.translation.corpus import (
    NO_ELISION,
    SEED_PAIRS,
    Grammar,
    generate,
    heldout_combos,
    join_fr,
    starts_vowel,
)
from genserve.translation.lexicon import NOUNS


@pytest.fixture(scope="module")
def corpus():
    return generate(0, n_train=20_000, n_heldout=1_000, n_heldout_coref=200)


def test_deterministic() -> None:
    a = generate(3, n_train=500, n_heldout=50, n_heldout_coref=20)
    b = generate(3, n_train=500, n_heldout=50, n_heldout_coref=20)
    assert a == b


def test_held_out_sources_are_never_trained_on(corpus) -> None:
    train = {p.en for p in corpus.train}
    assert len(corpus.heldout) == 1_000
    assert not train & {p.en for p in corpus.heldout}
    assert not train & {p.en for p in corpus.heldout_coreference}


def test_held_out_noun_pairs_never_meet_in_training(corpus) -> None:
    combos = heldout_combos(0)
    assert all(p.key[:2] not in combos for p in corpus.train if p.key)
    assert all(p.key[:2] in combos for p in corpus.heldout_coreference)


def test_contains_the_decks_sentences(corpus) -> None:
    pairs = {(p.en, p.fr) for p in corpus.train}
    assert set(SEED_PAIRS) <= pairs


def test_vocabulary_has_at_least_400_words(corpus) -> None:
    words = {w.lower() for p in corpus.train for w in re.findall(r"[A-Za-z']+", p.en)}
    assert len(words) >= 400


def test_pronoun_and_adjective_agree_with_the_noun_they_refer_to(corpus) -> None:
    coref = [p for p in corpus.train if p.template == "coreference"]
    assert len(coref) > 1000
    for p in coref[:500]:
        pronoun = "elle" if "qu'elle" in p.fr else "il"
        assert ("qu'il" in p.fr) != ("qu'elle" in p.fr)
        if pronoun == "elle":  # feminine adjective ends in e (trop grande, trop fatiguée...)
            assert re.search(r"trop \w*e\.$", p.fr), p.fr


@pytest.mark.parametrize(
    ("words", "text"),
    [
        (["le", "animal"], "l'animal"),
        (["la", "école"], "l'école"),
        (["à", "le", "marché"], "au marché"),
        (["près", "de", "les", "arbres"], "près des arbres"),
        (["parce que", "il", "était"], "parce qu'il était"),
        (["je", "ne", "aime", "pas"], "je n'aime pas"),
        (["je", "aime"], "j'aime"),
        (["le", "homme"], "l'homme"),
    ],
)
def test_french_elision_and_contractions(words: list[str], text: str) -> None:
    assert join_fr(words) == text


def test_grammar_covers_the_phenomena(corpus) -> None:
    fr = [p.fr for p in corpus.train]
    en = [p.en for p in corpus.train]
    assert any(" ne " in f and " pas de " in f for f in fr)  # negation with "pas de"
    assert any("Est-ce qu" in f for f in fr)  # questions
    assert any(" que " in f or " qu'" in f for f in fr if "parce" not in f)  # relative clauses
    assert any("didn't" in e for e in en) and any("did not" in e for e in en)
    assert any(" sont allées" in f or " est allée" in f for f in fr)  # être agreement


@pytest.mark.parametrize(
    ("words", "text"),
    [
        (["il", "va", "à", "le", "hôpital"], "il va à l'hôpital"),  # elision before contraction
        (["arrivés", "à", "le", "aéroport"], "arrivés à l'aéroport"),
        (["près", "de", "le", "hôtel"], "près de l'hôtel"),
        (["à", "les", "hôtels"], "aux hôtels"),
        (["est-ce", "que", "huit", "chiens"], "est-ce que huit chiens"),  # huit, onze: no elision
        (["est-ce", "que", "onze", "chats"], "est-ce que onze chats"),
        (["le", "héros"], "le héros"),  # h aspiré
        (["la", "hache"], "la hache"),
        (["à", "le", "hamster"], "au hamster"),
        (["de", "le", "haricot"], "du haricot"),
    ],
)
def test_elision_comes_before_contraction_and_skips_h_aspire(words: list[str], text: str) -> None:
    assert join_fr(words) == text


def test_no_elision_or_vowel_forms_before_h_aspire_and_numbers(corpus) -> None:
    fr = [p.fr for p in corpus.train]
    aspirated = "|".join(sorted(NO_ELISION))
    assert not [f for f in fr if re.search(rf"\b(?:l|d|qu|n|j)'(?:{aspirated})\b", f, re.I)]
    assert not [f for f in fr if re.search(rf"\b(?:bel|vieil|nouvel|cet) (?:{aspirated})\b", f)]
    contracted = [m.group(1) for f in fr for m in re.finditer(r"\b(?:au|du) (\w+)", f, re.I)]
    assert contracted and not [w for w in contracted if starts_vowel(w)]
    assert any(re.search(rf"\b(?:le|la|que|ce|beau) (?:{aspirated})\b", f) for f in fr)


def test_one_english_sentence_has_one_translation() -> None:
    """Two corpora from different seeds never translate the same English differently: a
    number English does not show (the sheep, past tense) is singular by one rule."""
    a = generate(0, n_train=20_000, n_heldout=0, n_heldout_coref=0)
    b = generate(1, n_train=20_000, n_heldout=0, n_heldout_coref=0)
    first = {p.en: p.fr for p in a.train}
    shared = [p for p in b.train if p.en in first]
    assert len(shared) > 300
    assert [(p.en, first[p.en], p.fr) for p in shared if first[p.en] != p.fr] == []


def test_number_shown_only_by_the_verb_and_two_adjectives_are_covered(corpus) -> None:
    number = [p for p in corpus.train if p.template == "number"]
    plural = [
        p
        for p in number
        if re.match(
            r"(The|My|Your|His|Her|Our|Their) (sheep|fish|deer)"
            r" (sleep|swim|are|were|do|eat|like)\b",
            p.en,
        )
    ]
    assert len(number) > 500 and plural
    assert all(p.fr.startswith(("Les ", "Mes ", "Vos ", "Ses ", "Nos ", "Leurs ")) for p in plural)
    two_pre = [
        p for p in corpus.train if re.search(r"\b(beau|belle|bel) (vieil|vieux|vieille)\b", p.fr)
    ]
    assert two_pre and not [f for f in (p.fr for p in corpus.train) if "bel vieil" in f]


# Grammalecte's misreadings of correct corpus French (checked by hand): a plural noun after
# two adjectives read as a verb ("Mes bonnes petites statues"), "fier" (proud) read as the
# verb "se fier", "château fort" (a strong castle) read as the compound château-fort.
# Matched by rule and flagged word, never by rule alone.
def _misread(rule: str, flagged: str) -> bool:
    plurals = {n.fr_pl for n in NOUNS}
    return (
        (rule.startswith("gv2__conj_det_plur_nom") and flagged in plurals)
        or (rule.startswith("gv1__conf_vinfi_adj") and flagged in {"fier", "fiers"})
        or (rule.startswith("g2__tu_substantifs") and flagged in {"château fort", "châteaux forts"})
    )


def test_every_template_writes_french_grammalecte_accepts(tmp_path) -> None:
    """Grammalecte (Debian's offline French grammar checker) over sentences from every
    template: no grammar error and no unknown word. Typography (curly apostrophes,
    non-breaking spaces) is off: the corpus writes plain ASCII punctuation on purpose."""
    corpus = generate(7, n_train=5_000, n_heldout=300, n_heldout_coref=100)
    pairs = [*corpus.train, *corpus.heldout, *corpus.heldout_coreference]
    templates = {p.template for p in pairs}
    drawn = {name for name, _ in Grammar.TEMPLATES} - {"crossing", "packing"}
    assert templates >= drawn | {"coreference"}
    text = tmp_path / "fr.txt"
    text.write_text("\n".join(p.fr for p in pairs) + "\n", encoding="utf-8")
    cli = shutil.which("grammalecte-cli")
    assert cli, "grammalecte-cli is missing: `make system` installs it"
    run = subprocess.run(
        [cli, "-f", str(text), "-j", "-off", "apos", "nbsp", "typo", "esp"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    report = json.loads(run.stdout[run.stdout.index("{") :])
    problems = []
    for para in report["data"]:
        sentence = pairs[para["iParagraph"] - 1].fr
        for e in para["lGrammarErrors"]:
            flagged = sentence[e["nStart"] : e["nEnd"]]
            if not _misread(e["sRuleId"], flagged):
                problems.append((sentence, flagged, e["sRuleId"], e["sMessage"]))
        problems += [(sentence, e["sValue"], "spelling", "") for e in para["lSpellingErrors"]]
    assert len(pairs) > 5_000 and problems == [], problems[:10]
