"""The demo English-French corpus, generated from a grammar and the lexicon.

Covers subject-verb agreement, adjective order and gender agreement, French elision
and contractions (l', qu', du, au), negation (with "pas de"), the passé composé with
both auxiliaries and participle agreement, questions, relative clauses, coordinated
clauses, professions, and "... because it was too <adjective>" clauses whose pronoun
(il / elle) and adjective agree with the noun the adjective points at. It contains the
slide deck's sentences. Everything is drawn from one seeded ``random.Random``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from genserve.translation.lexicon import (
    ADJECTIVES,
    H_ASPIRE,
    NOUNS,
    PROFESSIONS,
    VERBS,
    Adjective,
    Noun,
)

VOWELS = "aeiouàâäéèêëîïôöûüœh"  # and a mute h: l'hôtel, l'homme, cet hôpital
# Words written as if they began with a consonant: no elision, no bel/vieil/cet before them
# ("que huit", "le onze", "la hache", "le héros").
NO_ELISION = frozenset({"huit", "onze", *H_ASPIRE})
# "grand" before these makes another word (grand-père, grand-oncle): never generated.
FAMILY = frozenset({"père", "mère", "oncle", "tante", "pères", "mères", "oncles", "tantes"})
ADJ_ORDER = {"opinion": 0, "size": 1, "age": 2, "shape": 3, "colour": 4, "quality": 5}
SEED_PAIRS = [
    ("I am a student.", "Je suis étudiant."),
    (
        "The animal didn't cross the street because it was too tired.",
        "L'animal n'a pas traversé la rue parce qu'il était trop fatigué.",
    ),
    (
        "The animal didn't cross the street because it was too wide.",
        "L'animal n'a pas traversé la rue parce qu'elle était trop large.",
    ),
    (
        "The lamp could not be packed into the suitcase because it was too large.",
        "La lampe n'a pas pu être rangée dans la valise parce qu'elle était trop grande.",
    ),
    (
        "The lamp could not be packed into the suitcase because it was too small.",
        "La lampe n'a pas pu être rangée dans la valise parce qu'elle était trop petite.",
    ),
]

# Subjects as pronouns: English, French, verb person (je, il, nous, vous, ils), gender, plural
PRONOUNS = [
    ("I", "je", 0, "m", False),
    ("you", "vous", 3, "m", True),
    ("he", "il", 1, "m", False),
    ("she", "elle", 1, "f", False),
    ("we", "nous", 2, "m", True),
    ("they", "ils", 4, "m", True),
]
NUMBERS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
NUMBERS += ["eleven", "twelve"]
NUMBERS_FR = ["deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix"]
NUMBERS_FR += ["onze", "douze"]
DAYS = list(
    zip(
        ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
        ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"],
        strict=True,
    )
)
MONTHS_EN = "January February March April May June July August September October November"
MONTHS_FR = "janvier février mars avril mai juin juillet août septembre octobre novembre"
MONTHS = [
    *zip(MONTHS_EN.split(), MONTHS_FR.split(), strict=True),
    ("December", "décembre"),
]
TIME_PRESENT = [
    ("every day", "tous les jours"),
    ("today", "aujourd'hui"),
    ("now", "maintenant"),
    ("in the morning", "le matin"),
    ("in the evening", "le soir"),
    ("at night", "la nuit"),
    ("every week", "chaque semaine"),
    *((f"on {d}s", f"le {f}") for d, f in DAYS),
]
TIME_PAST = [
    ("yesterday", "hier"),
    ("last week", "la semaine dernière"),
    ("last year", "l'année dernière"),
    ("this morning", "ce matin"),
    ("last night", "hier soir"),
    *((f"on {d}", f) for d, f in DAYS),
    *((f"in {m}", f"en {f}") for m, f in MONTHS),
]
PREPOSITIONS = [
    ("in", "dans"),
    ("on", "sur"),
    ("under", "sous"),
    ("behind", "derrière"),
    ("in front of", "devant"),
    ("near", "près de"),
    ("next to", "à côté de"),
    ("far from", "loin de"),
]
AUX = {
    "avoir": ("ai", "a", "avons", "avez", "ont"),
    "être": ("suis", "est", "sommes", "êtes", "sont"),
}
ETRE_IMPERFECT = ("étais", "était", "étions", "étiez", "étaient")
TEXTS = {"book", "letter", "newspaper", "map"}

# Coreference: adjectives that point at the first noun (the mover / the thing packed)
# or at the second (the place / the container).
ANIMAL_REASONS = ["tired", "old", "weak", "scared", "slow", "young", "lazy", "hungry", "sick"]
PLACE_REASONS = ["wide", "long", "dangerous", "busy", "icy", "crowded", "deep", "steep", "dark"]
OBJECT_REASONS = ["large", "big", "long", "heavy"]
CONTAINER_REASONS = ["small", "full", "narrow"]
CROSS_VERBS = [
    ("didn't cross", "n'a pas traversé"),
    ("did not cross", "n'a pas traversé"),
    ("couldn't cross", "n'a pas pu traverser"),
    ("could not cross", "n'a pas pu traverser"),
    ("refused to cross", "a refusé de traverser"),
    ("didn't reach", "n'a pas atteint"),
]


ELIDING = frozenset({"le", "la", "que", "ne", "je", "de", "me", "te", "se", "parce que"})
CONTRACTIONS = {("à", "le"): "au", ("à", "les"): "aux", ("de", "le"): "du", ("de", "les"): "des"}


def starts_vowel(word: str) -> bool:
    """Whether ``word`` takes elision before it (l', qu', n'), bel/vieil/nouvel and cet: a
    vowel or a mute h, but not huit, onze or an h aspiré."""
    return bool(word) and word[0].lower() in VOWELS and word.lower() not in NO_ELISION


def join_fr(words: list[str]) -> str:
    """Join French words: elision first (le/la/que/ne/je/de before a vowel or mute h), then
    contraction of à/de with what is left of le/les, so "à le hôpital" is "à l'hôpital"
    and "de le hôtel" is "de l'hôtel", while "à le marché" is "au marché"."""
    elided: list[str] = []
    words = [w for w in words if w]
    for i, w in enumerate(words):
        following = words[i + 1] if i + 1 < len(words) else ""
        elided.append(w[:-1] + "'" if w.lower() in ELIDING and starts_vowel(following) else w)
    out: list[str] = []
    for w in elided:
        if out and (out[-1].lower(), w) in CONTRACTIONS:
            out[-1] = CONTRACTIONS[(out[-1].lower(), w)]
            continue
        out.append(w)
    text = ""
    for w in out:
        text += w if (not text or text.endswith("'")) else " " + w
    return text


def sentence(text: str, end: str = ".") -> str:
    return text[0].upper() + text[1:] + end


@dataclass(frozen=True)
class Phrase:
    """A noun phrase or pronoun in both languages with what agreement needs."""

    en: str
    fr: list[str]
    gender: str
    plural: bool
    person: int  # index into French verb forms: je, il, nous, vous, ils
    third_singular: bool  # English -s
    indefinite: bool = False  # un / une / des: becomes "de" under negation


def pronoun(p: tuple[str, str, int, str, bool]) -> Phrase:
    en, fr, person, gender, plural = p
    return Phrase(en, [fr], gender, plural, person, en in {"he", "she"})


def _adj_fr(adj: Adjective, gender: str, plural: bool, next_word: str) -> str:
    if adj.m_vowel and gender == "m" and not plural and starts_vowel(next_word):
        return adj.m_vowel
    return adj.form(gender, plural)


def noun_phrase(
    rng: random.Random,
    noun: Noun,
    *,
    plural: bool | None = None,
    det: str | None = None,
    adjs: list[Adjective] | None = None,
    max_adjs: int = 2,
    number_shown: bool = False,
) -> Phrase:
    """A determiner, up to ``max_adjs`` adjectives and the noun, in both languages.

    A noun whose English plural is its singular (sheep, fish) after a determiner that
    shows no number (the, my...) is singular unless ``number_shown``: the caller's verb
    tells them apart ("the sheep sleep" / "sleeps"). Otherwise one English sentence would
    have two translations."""
    if plural is None:
        plural = rng.random() < 0.3
    if det is None:
        det = rng.choice(
            ["the"] * 6
            + ["a"] * 3
            + ["this", "my", "your", "his", "her", "our", "their"]
            + (["number"] if plural else [])
        )
    if noun.en == noun.en_pl and det not in {"a", "this", "number"} and not number_shown:
        plural = False
    if adjs is None:
        k = rng.choices([0, 1, 2], weights=[5, 4, 1])[0]
        adjs = rng.sample(ADJECTIVES, min(k, max_adjs))
    adjs = compatible(noun, adjs)
    g = noun.gender
    # French: adjectives before or after the noun.
    pre = [a for a in adjs if a.pre]
    post = [a for a in adjs if not a.pre]
    noun_fr = noun.fr_pl if plural else noun.fr
    core: list[str] = []
    for i, a in enumerate(pre):
        following = pre[i + 1].m if i + 1 < len(pre) else noun_fr
        core.append(_adj_fr(a, g, plural, following))
    core.append(noun_fr)
    core += [a.form(g, plural) for a in post]
    first = core[0]

    en_words = [a.en for a in adjs] + [noun.en_pl if plural else noun.en]
    indefinite = False
    if det == "number":
        i = rng.randrange(len(NUMBERS))
        en_det, fr_det = NUMBERS[i], NUMBERS_FR[i]
    elif det == "a":
        indefinite = True
        if plural:
            en_det, fr_det = "", ("de" if pre else "des")
        else:
            en_det = "an" if en_words[0][0] in "aeiou" else "a"
            fr_det = "une" if g == "f" else "un"
    elif det == "the":
        en_det, fr_det = "the", "les" if plural else ("la" if g == "f" else "le")
    elif det == "this":
        en_det = "these" if plural else "this"
        fr_det = (
            "ces" if plural else "cette" if g == "f" else "cet" if starts_vowel(first) else "ce"
        )
    else:
        en_det = det
        fr_det = {
            "my": ("mon", "ma", "mes"),
            "your": ("votre", "votre", "vos"),
            "his": ("son", "sa", "ses"),
            "her": ("son", "sa", "ses"),
            "our": ("notre", "notre", "nos"),
            "their": ("leur", "leur", "leurs"),
        }[det][2 if plural else (1 if g == "f" else 0)]
        if fr_det in {"ma", "sa"} and starts_vowel(first):
            fr_det = "mon" if fr_det == "ma" else "son"
    en = " ".join(w for w in [en_det, *en_words] if w)
    return Phrase(en, [fr_det, *core], g, plural, 4 if plural else 1, not plural, indefinite)


def compatible(noun: Noun, adjs: list[Adjective]) -> list[Adjective]:
    """``adjs`` in English order, without those that cannot go together: two of one kind,
    a colour with dark or light (French reads "brune sombre" as one compound colour), and
    grand before a family noun (grand-père is another word)."""
    out: list[Adjective] = []
    for a in sorted(adjs, key=lambda a: ADJ_ORDER[a.kind]):
        kinds = {b.kind for b in out}
        shaded = any(b.en in {"dark", "light"} for b in out) or a.en in {"dark", "light"}
        if a.kind in kinds or (shaded and "colour" in kinds | {a.kind}):
            continue
        if a.m == "grand" and noun.fr in FAMILY:
            continue
        out.append(a)
    return out


def _agree(word: str, gender: str, plural: bool) -> str:
    """Participle or adjective agreement for regular forms."""
    if gender == "f" and not word.endswith("e"):
        word += "e"
    if plural and not word.endswith(("s", "x")):
        word += "s"
    return word


@dataclass(frozen=True)
class Pair:
    en: str
    fr: str
    template: str
    key: tuple[str, ...] = ()  # what coreference hold-outs are decided on


class Grammar:
    """Draws sentence pairs; every method returns a Pair."""

    def __init__(self, rng: random.Random, heldout_combos: set[tuple[str, str]] | None = None):
        self.rng = rng
        self.by_kind: dict[str, list[Noun]] = {}
        for n in NOUNS:
            self.by_kind.setdefault(n.kind, []).append(n)
        self.by_kind["text"] = [n for n in NOUNS if n.en in TEXTS]
        self.adj = {a.en: a for a in ADJECTIVES}
        self.transitive = [v for v in VERBS if v.objects]
        self.motion = [v for v in VERBS if v.aux == "être"]
        self.activity = [v for v in VERBS if not v.objects and v.aux == "avoir"]
        # Count nouns whose English plural is the singular: only a verb shows their number.
        self.invariant = [n for n in self.by_kind["animal"] if n.en == n.en_pl]
        self.heldout_combos = heldout_combos or set()

    # -- pieces --------------------------------------------------------------------------

    def subject(
        self, kinds: tuple[str, ...] = ("animal", "person"), *, number_shown: bool = True
    ) -> Phrase:
        """A pronoun or a noun phrase; ``number_shown``: the verb shows its number."""
        if self.rng.random() < 0.35:
            return pronoun(self.rng.choice(PRONOUNS))
        kind = self.rng.choice(kinds)
        noun = self.rng.choice(self.by_kind[kind])
        return noun_phrase(self.rng, noun, number_shown=number_shown)

    def two_adjectives(self) -> list[Adjective]:
        """Two adjectives of different kinds; half the time both go before a French noun
        (un beau vieil hôtel, une jolie petite maison)."""
        pool = [a for a in ADJECTIVES if a.pre] if self.rng.random() < 0.5 else ADJECTIVES
        while True:
            a, b = self.rng.sample(pool, 2)
            if a.kind != b.kind:
                return [a, b]

    def noun_of(self, kinds: tuple[str, ...]) -> Noun:
        return self.rng.choice(self.by_kind[self.rng.choice(kinds)])

    def place_pp(self) -> tuple[str, list[str]]:
        en, fr = self.rng.choice(PREPOSITIONS)
        kind = "object" if en in {"on", "under"} else self.rng.choice(["building", "place"])
        np = noun_phrase(self.rng, self.rng.choice(self.by_kind[kind]), det="the", max_adjs=1)
        return f"{en} {np.en}", [*fr.split(" "), *np.fr]

    def time(self, past: bool) -> tuple[str, str]:
        return self.rng.choice(TIME_PAST if past else TIME_PRESENT)

    def _en_verb(
        self, subj: Phrase, base: str, s3: str, past_form: str, past: bool, negative: bool
    ) -> str:
        r = self.rng.random() < 0.5  # contracted or not
        if past:
            return f"{'didn' + chr(39) + 't' if r else 'did not'} {base}" if negative else past_form
        if not negative:
            return s3 if subj.third_singular else base
        if subj.third_singular:
            return f"{'doesn' + chr(39) + 't' if r else 'does not'} {base}"
        return f"{'don' + chr(39) + 't' if r else 'do not'} {base}"

    def clause(
        self,
        past: bool,
        negative: bool,
        question: bool = False,
        *,
        subj: Phrase | None = None,
        object_adjs: list[Adjective] | None = None,
    ) -> tuple[str, list[str]]:
        """Subject + verb (+ object or place) in both languages, without end punctuation.
        A present-tense English verb shows its subject's number (sleeps / sleep; does /
        do); a past one does not. ``object_adjs``: a transitive verb whose object has
        these adjectives."""
        rng = self.rng
        subj = subj or self.subject(number_shown=not past)
        roll = 0.0 if object_adjs else rng.random()
        if roll < 0.6:
            verb = rng.choice(self.transitive)
            obj = noun_phrase(rng, self.noun_of(verb.objects), adjs=object_adjs)
            en_rest, fr_rest = obj.en, list(obj.fr)
            if negative and obj.indefinite and not obj.fr[0].isdigit():
                fr_rest = ["de", *obj.fr[1:]]
        elif roll < 0.8:
            verb = rng.choice(self.motion)
            dest = noun_phrase(
                rng, rng.choice(self.by_kind["building"]), det="the", plural=False, max_adjs=1
            )
            en_rest = f"{verb.en_prep} {dest.en}".strip()
            fr_rest = [verb.fr_prep, *dest.fr]
        else:
            verb = rng.choice(self.activity)
            en_rest, fr_rest = self.place_pp() if rng.random() < 0.7 else ("", [])

        if question:
            aux_en = "did" if past else ("does" if subj.third_singular else "do")
            en = f"{aux_en} {subj.en} {verb.en} {en_rest}".strip()
        else:
            en_v = self._en_verb(subj, verb.en, verb.en_3sg, verb.en_past, past, negative)
            en = f"{subj.en} {en_v} {en_rest}".strip()
        p = subj.person
        if past:
            aux = AUX[verb.aux][p]
            pp = verb.fr_pp
            if verb.aux == "être":
                pp = _agree(pp, subj.gender, subj.plural)
            fr_v = ["ne", aux, "pas", pp] if negative else [aux, pp]
        else:
            form = verb.fr[p]
            head, *tail = form.split(" ")
            fr_v = ["ne", head, "pas", *tail] if negative else [form]
        return en, [*subj.fr, *fr_v, *fr_rest]

    # -- templates -----------------------------------------------------------------------

    def simple(self) -> Pair:
        past, negative = self.rng.random() < 0.4, self.rng.random() < 0.3
        en, fr = self.clause(past, negative)
        if self.rng.random() < 0.3:
            t_en, t_fr = self.time(past)
            en, fr = f"{en} {t_en}", [*fr, t_fr]
        return Pair(sentence(en), sentence(join_fr(fr)), "simple")

    def question(self) -> Pair:
        rng = self.rng
        roll = rng.random()
        if roll < 0.5:
            past = rng.random() < 0.4
            en, fr = self.clause(past, False, question=True)
            return Pair(
                sentence(en, "?"), sentence(join_fr(["est-ce", "que", *fr]), " ?"), "question"
            )
        kinds = ("animal", "object", "vehicle", "building", "person")
        np = noun_phrase(rng, self.noun_of(kinds), number_shown=True)  # by is/are, was/were
        if roll < 0.8:
            adj = rng.choice(ADJECTIVES)
            past = rng.random() < 0.3
            be = ("were" if np.plural else "was") if past else ("are" if np.plural else "is")
            fr_be = ETRE_IMPERFECT[np.person] if past else AUX["être"][np.person]
            en = f"{be} {np.en} {adj.en}"
            fr = ["est-ce", "que", *np.fr, fr_be, adj.form(np.gender, np.plural)]
            return Pair(sentence(en, "?"), sentence(join_fr(fr), " ?"), "question")
        be = "are" if np.plural else "is"
        return Pair(
            sentence(f"where {be} {np.en}", "?"),
            sentence(join_fr(["où", AUX["être"][np.person], *np.fr]), " ?"),
            "question",
        )

    def copula(self, subj: Phrase | None = None) -> Pair:
        rng = self.rng
        subj = subj or self.subject(("animal", "object", "vehicle", "building", "person", "food"))
        adj = rng.choice(ADJECTIVES)
        past, negative = rng.random() < 0.35, rng.random() < 0.3
        en_be = {
            (False, "I"): "am",
            (True, "I"): "was",
        }.get((past, subj.en))
        if en_be is None:
            if past:
                en_be = "was" if subj.third_singular else "were"
            else:
                en_be = "is" if subj.third_singular else "are"
        if negative:
            contract = rng.random() < 0.5 and en_be != "am"
            en_be = f"{en_be}n't" if contract else f"{en_be} not"
        fr_be = ETRE_IMPERFECT[subj.person] if past else AUX["être"][subj.person]
        fr_adj = adj.form(subj.gender, subj.plural)
        fr = [*subj.fr, "ne", fr_be, "pas", fr_adj] if negative else [*subj.fr, fr_be, fr_adj]
        return Pair(sentence(f"{subj.en} {en_be} {adj.en}"), sentence(join_fr(fr)), "copula")

    def profession(self) -> Pair:
        rng = self.rng
        en_prof, fr_m, fr_f = rng.choice(PROFESSIONS)
        if rng.random() < 0.6:
            subj = pronoun(rng.choice(PRONOUNS))
        else:
            subj = noun_phrase(
                rng,
                rng.choice(self.by_kind["person"]),
                det=rng.choice(["the", "my", "your", "his", "her", "our", "their"]),
                max_adjs=0,
            )
        past, negative = rng.random() < 0.3, rng.random() < 0.25
        if subj.en == "I":
            en_be = "was" if past else "am"
        elif past:
            en_be = "was" if subj.third_singular else "were"
        else:
            en_be = "is" if subj.third_singular else "are"
        if negative:
            en_be += " not"
        word = fr_f if subj.gender == "f" else fr_m
        if subj.plural:
            word = word if word.endswith("s") else word + "s"
            en_noun = _plural_prof(en_prof)
        else:
            en_noun = ("an " if en_prof[0] in "aeiou" else "a ") + en_prof
        fr_be = ETRE_IMPERFECT[subj.person] if past else AUX["être"][subj.person]
        fr = [*subj.fr, "ne", fr_be, "pas", word] if negative else [*subj.fr, fr_be, word]
        return Pair(sentence(f"{subj.en} {en_be} {en_noun}"), sentence(join_fr(fr)), "profession")

    def relative(self) -> Pair:
        rng = self.rng
        adj = rng.choice(ADJECTIVES)
        if rng.random() < 0.5:  # object relative: participle agrees with the head noun
            verb = rng.choice(self.transitive)
            head = noun_phrase(rng, self.noun_of(verb.objects), det="the", number_shown=True)
            subj = self.subject(number_shown=False)  # "that the sheep saw"
            pp = (
                _agree(verb.fr_pp, head.gender, head.plural)
                if " " not in verb.fr_pp
                else (verb.fr_pp)
            )
            be = "were" if head.plural else "was"
            fr_be = ETRE_IMPERFECT[head.person]
            en = f"{head.en} that {subj.en} {verb.en_past} {be} {adj.en}"
            fr = [
                *head.fr,
                "que",
                *subj.fr,
                AUX["avoir"][subj.person],
                pp,
                fr_be,
                adj.form(head.gender, head.plural),
            ]
        else:  # subject relative
            verb = rng.choice(self.transitive)
            kinds = ("animal", "person")
            head = noun_phrase(rng, self.noun_of(kinds), det="the", number_shown=True)
            obj = noun_phrase(rng, self.noun_of(verb.objects), det="the", max_adjs=1)
            be = "are" if head.plural else "is"
            en_v = verb.en if head.plural else verb.en_3sg
            word = (
                "who"
                if head.en.split()[-1]
                in {n.en for n in self.by_kind["person"]}
                | {n.en_pl for n in self.by_kind["person"]}
                else "that"
            )
            en = f"{head.en} {word} {en_v} {obj.en} {be} {adj.en}"
            fr = [
                *head.fr,
                "qui",
                verb.fr[head.person],
                *obj.fr,
                AUX["être"][head.person],
                adj.form(head.gender, head.plural),
            ]
        return Pair(sentence(en), sentence(join_fr(fr)), "relative")

    def coordinated(self) -> Pair:
        rng = self.rng
        past = rng.random() < 0.4
        en1, fr1 = self.clause(past, rng.random() < 0.25)
        en2, fr2 = self.clause(past, rng.random() < 0.25)
        en_c, fr_c = rng.choice([("and", "et"), (", but", ", mais")])  # a comma before but
        return Pair(
            sentence(f"{en1} {en_c} {en2}".replace(" ,", ",")),
            sentence(join_fr([*fr1, fr_c, *fr2]).replace(" ,", ",")),
            "coordinated",
        )

    def number(self) -> Pair:
        """A subject whose number only its verb shows: "The sheep sleep." / "sleeps"."""
        rng = self.rng
        subj = noun_phrase(
            rng,
            rng.choice(self.invariant),
            plural=rng.random() < 0.5,
            det=rng.choice(["the"] * 4 + ["my", "your", "his", "her", "our", "their"]),
            number_shown=True,
        )
        if rng.random() < 0.35:
            return replace(self.copula(subj), template="number")
        en, fr = self.clause(False, rng.random() < 0.25, subj=subj)
        return Pair(sentence(en), sentence(join_fr(fr)), "number")

    def adjectives(self) -> Pair:
        """A noun with two adjectives: "a beautiful old hotel", "un beau vieil hôtel"."""
        rng = self.rng
        adjs = self.two_adjectives()
        if rng.random() < 0.6:
            en, fr = self.clause(rng.random() < 0.4, rng.random() < 0.2, object_adjs=adjs)
            return Pair(sentence(en), sentence(join_fr(fr)), "adjectives")
        kinds = ("animal", "object", "vehicle", "building", "person")
        subj = noun_phrase(rng, self.noun_of(kinds), adjs=adjs, number_shown=True)
        return replace(self.copula(subj), template="adjectives")

    def _because(
        self, first: Phrase, second: Phrase, reasons_first: list[str], reasons_second: list[str]
    ) -> tuple[str, list[str], str]:
        """ "because it was too ADJ": the adjective decides which noun "it" is."""
        to_first = self.rng.random() < 0.5
        adj = self.adj[self.rng.choice(reasons_first if to_first else reasons_second)]
        ref = first if to_first else second
        fr_pron = "elle" if ref.gender == "f" else "il"
        fr = ["parce que", fr_pron, "était", "trop", adj.form(ref.gender, False)]
        return f"because it was too {adj.en}", fr, "first" if to_first else "second"

    def crossing(self) -> Pair:
        rng = self.rng
        animal = rng.choice(self.by_kind["animal"])
        place = rng.choice(self.by_kind["place"])
        a = noun_phrase(
            rng, animal, plural=False, det=rng.choice(["the"] * 4 + ["my", "this"]), max_adjs=1
        )
        p = noun_phrase(rng, place, plural=False, det="the", max_adjs=1)
        en_v, fr_v = rng.choice(CROSS_VERBS)
        en_b, fr_b, ref = self._because(a, p, ANIMAL_REASONS, PLACE_REASONS)
        fr = [*a.fr, *fr_v.split(" "), *p.fr, *fr_b]
        return Pair(
            sentence(f"{a.en} {en_v} {p.en} {en_b}"),
            sentence(join_fr(fr)),
            "coreference",
            (animal.en, place.en, ref),
        )

    def packing(self) -> Pair:
        rng = self.rng
        obj = rng.choice(self.by_kind["object"])
        box = rng.choice(self.by_kind["container"])
        o = noun_phrase(rng, obj, plural=False, det="the", max_adjs=0)
        c = noun_phrase(
            rng, box, plural=False, det=rng.choice(["the", "the", "my", "her"]), max_adjs=0
        )
        en_b, fr_b, ref = self._because(o, c, OBJECT_REASONS, CONTAINER_REASONS)
        if rng.random() < 0.5:
            en_v = rng.choice(["could not be packed into", "couldn't be packed into"])
            fr_v = ["n'a", "pas", "pu", "être", _agree("rangé", o.gender, False), "dans"]
        else:
            en_v = rng.choice(["didn't fit in", "did not fit in", "didn't fit into"])
            fr_v = ["ne", "rentrait", "pas", "dans"]
        fr = [*o.fr, *fr_v, *c.fr, *fr_b]
        return Pair(
            sentence(f"{o.en} {en_v} {c.en} {en_b}"),
            sentence(join_fr(fr)),
            "coreference",
            (obj.en, box.en, ref),
        )

    TEMPLATES: tuple[tuple[str, float], ...] = (
        ("simple", 0.26),
        ("question", 0.12),
        ("copula", 0.1),
        ("profession", 0.06),
        ("relative", 0.1),
        ("coordinated", 0.08),
        ("crossing", 0.18),
        ("packing", 0.1),
        ("number", 0.05),
        ("adjectives", 0.06),
    )

    def draw(self) -> Pair:
        names, weights = zip(*self.TEMPLATES, strict=True)
        method: Callable[[], Pair] = getattr(self, self.rng.choices(names, weights)[0])
        return method()


def _plural_prof(word: str) -> str:
    return word + "es" if word.endswith(("ch", "sh", "s")) else word + "s"


@dataclass(frozen=True)
class Corpus:
    train: list[Pair]
    heldout: list[Pair]
    heldout_coreference: list[Pair]  # noun pairs never seen together in training


def heldout_combos(seed: int) -> set[tuple[str, str]]:
    """About 15% of (animal, place) and (object, container) pairs, reserved for testing."""
    rng = random.Random(seed + 1)
    g = Grammar(rng)
    combos = [(a.en, p.en) for a in g.by_kind["animal"] for p in g.by_kind["place"]]
    combos += [(o.en, c.en) for o in g.by_kind["object"] for c in g.by_kind["container"]]
    keep = {("animal", "street"), ("lamp", "suitcase")}
    return {c for c in combos if rng.random() < 0.15 and c not in keep}


def generate(
    seed: int = 0, n_train: int = 100_000, n_heldout: int = 1_200, n_heldout_coref: int = 400
) -> Corpus:
    """Deterministic corpus: train pairs, held-out pairs (sources never in training) and
    held-out coreference sentences over noun pairs that training never combines."""
    rng = random.Random(seed)
    combos = heldout_combos(seed)
    g = Grammar(rng)
    seen: set[str] = set()
    train: list[Pair] = [Pair(en, fr, "seed") for en, fr in SEED_PAIRS]
    heldout: list[Pair] = []
    coref: list[Pair] = []
    seen.update(p.en for p in train)

    def fresh() -> Iterator[Pair]:
        while True:
            p = g.draw()
            if p.en not in seen:
                seen.add(p.en)
                yield p

    stream = fresh()
    while len(heldout) < n_heldout or len(coref) < n_heldout_coref or len(train) < n_train:
        p = next(stream)
        if p.key and p.key[:2] in combos:
            if len(coref) < n_heldout_coref:
                coref.append(p)
            continue
        if len(heldout) < n_heldout and rng.random() < 0.05:
            heldout.append(p)
        elif len(train) < n_train:
            train.append(p)
        elif len(heldout) < n_heldout:
            heldout.append(p)
    return Corpus(train, heldout, coref)
