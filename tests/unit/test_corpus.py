from __future__ import annotations

import re

import pytest

from genserve.translation.corpus import SEED_PAIRS, generate, heldout_combos, join_fr


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
