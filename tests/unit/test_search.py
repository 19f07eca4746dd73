"""Greedy and beam search on a toy decoder whose probabilities are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from genserve.translation.search import (
    CACHE_CHUNK,
    DecoderState,
    Joiners,
    SearchConfig,
    decode,
    search,
)

EOS, START, PAD = 1, 0, 0
DEFAULT = [0.1, 0.05, 0.3, 0.3, 0.25]  # where the table says nothing: eos unlikely


def toy_step(table: dict[tuple[int, ...], list[float]]):
    """A decoder whose next-token log-probabilities depend on the tokens so far."""

    def step(tokens: np.ndarray, state: DecoderState):
        rows = []
        for i, tok in enumerate(tokens[:, 0]):
            t = int(state.positions[i])
            history = (*tuple(int(x) for x in state.cross_keys[0, i, 0, 0, :t]), int(tok))
            probs = np.array(table.get(history[1:], DEFAULT), np.float64)
            rows.append(np.log(np.maximum(probs, 1e-30)))
            # Remember the history in the "source": (L, N, H, 1, Dh), Dh >= max length.
            state.cross_keys[0, i, 0, 0, t] = tok
        return np.stack(rows).astype(np.float32), *new_columns(state)

    return step


def new_columns(state: DecoderState) -> tuple[np.ndarray, np.ndarray]:
    """A step's new keys and values (L, N, H, 1, Dh): the toys keep nothing there."""
    l_, n, h, _, d = state.past_keys.shape
    return np.zeros((l_, n, h, 1, d), np.float32), np.zeros((l_, n, h, 1, d), np.float32)


def state(n: int) -> DecoderState:
    ck = np.zeros((1, n, 1, 1, 16), np.float32)
    return DecoderState.start(ck, ck.copy(), np.ones((n, 1), np.int64))


# After the start token: token 2 is likelier (0.6) than 3 (0.4), but after 2 everything is
# uncertain, while after 3 the end is certain: beam search must prefer [3, EOS].
TABLE = {
    (): [0.0, 0.0, 0.6, 0.4, 0.0],
    (2,): [0.0, 0.3, 0.35, 0.35, 0.0],
    (3,): [0.0, 1.0, 0.0, 0.0, 0.0],
    (2, 2): [0.0, 1.0, 0.0, 0.0, 0.0],
    (2, 3): [0.0, 1.0, 0.0, 0.0, 0.0],
}


def test_greedy_takes_the_locally_best_token_and_stops_at_eos() -> None:
    cfg = SearchConfig(eos_id=EOS, start_id=START, banned_ids=(PAD,), max_new_tokens=10)
    [h] = search(toy_step(TABLE), state(1), cfg)
    assert h.tokens[:1] == [2] and h.tokens[-1] == EOS and len(h.tokens) == 3


def test_beam_search_finds_the_likelier_sentence() -> None:
    cfg = SearchConfig(
        eos_id=EOS,
        start_id=START,
        banned_ids=(PAD,),
        num_beams=2,
        max_new_tokens=10,
        length_penalty=0.0,
    )
    [h] = search(toy_step(TABLE), state(1), cfg)
    assert h.tokens == [3, EOS]
    np.testing.assert_allclose(h.score, np.log(0.4), rtol=1e-4)


def test_forced_eos_and_banned_tokens() -> None:
    uniform: dict = {}
    cfg = SearchConfig(eos_id=EOS, start_id=START, banned_ids=(PAD, 2), max_new_tokens=4)
    for h in search(toy_step(uniform), state(3), cfg):
        assert (
            len(h.tokens) == 4 and h.tokens[-1] == EOS and 2 not in h.tokens and PAD not in h.tokens
        )
    for h in search(
        toy_step(uniform),
        state(2),
        SearchConfig(eos_id=EOS, start_id=START, banned_ids=(PAD,), num_beams=3, max_new_tokens=3),
    ):
        assert len(h.tokens) <= 3 and h.tokens[-1] == EOS


def test_no_forced_eos_gives_a_fixed_length() -> None:
    cfg = SearchConfig(
        eos_id=EOS, start_id=START, banned_ids=(PAD, EOS), forced_eos=False, max_new_tokens=6
    )
    assert [len(h.tokens) for h in search(toy_step({}), state(4), cfg)] == [6] * 4


# -- iteration-level batching: rows that join a running search --------------------------

SOURCES = {  # a row's "source" (cross_keys[0, i, 0, 0, -1]) changes what it says
    1: {(): [0.0, 0.0, 0.6, 0.4, 0.0], (2,): [0.0, 0.2, 0.3, 0.5, 0.0]},
    2: {(): [0.0, 0.0, 0.3, 0.7, 0.0], (3,): [0.0, 0.1, 0.6, 0.3, 0.0]},
    3: {(): [0.0, 0.5, 0.2, 0.3, 0.0]},
}


def row_step(tokens: np.ndarray, state: DecoderState):
    """A toy decoder that reads each row's own position, so rows may be at different
    steps (as after a join), and whose table depends on the row's source."""
    rows = []
    for i, tok in enumerate(tokens[:, 0]):
        t = int(state.positions[i])
        source = int(state.cross_keys[0, i, 0, 0, -1])
        history = (*(int(x) for x in state.cross_keys[0, i, 0, 0, :t]), int(tok))
        probs = np.array(SOURCES[source].get(history[1:], DEFAULT), np.float64)
        rows.append(np.log(np.maximum(probs, 1e-30)))
        state.cross_keys[0, i, 0, 0, t] = tok
    return np.stack(rows).astype(np.float32), *new_columns(state)


def sources(*ids: int) -> DecoderState:
    ck = np.zeros((1, len(ids), 1, 1, 16), np.float32)
    ck[0, :, 0, 0, -1] = ids
    return DecoderState.start(ck, ck.copy(), np.ones((len(ids), 1), np.int64))


@pytest.mark.parametrize("beams", [1, 3])
def test_rows_that_join_later_get_what_they_get_alone(beams: int) -> None:
    cfg = SearchConfig(
        eos_id=EOS,
        start_id=START,
        banned_ids=(PAD,),
        num_beams=beams,
        max_new_tokens=6,
        length_penalty=1.0,
    )
    alone = {s: search(row_step, sources(s), cfg)[0] for s in SOURCES}
    arrivals = {1: Joiners(sources(2, 3), ["b", "c"]), 3: Joiners(sources(1), ["d"])}
    calls, finished = [0], {}

    def join():
        calls[0] += 1
        return arrivals.get(calls[0] - 1)

    def done(row, hyp):
        finished[row] = hyp

    own = search(row_step, sources(1), cfg, join=join, done=done)
    assert own[0] == alone[1] and finished.pop(0) == alone[1]
    assert finished == {"b": alone[2], "c": alone[3], "d": alone[1]}


def test_rows_of_different_configs_share_the_steps_and_get_what_they_get_alone() -> None:
    """decode: greedy rows, 3-beam rows and rows with a shorter length cap join one
    decode at different steps (a config already searching gets more rows later); each
    gets what it gets searched alone with its own config."""
    base = dict(eos_id=EOS, start_id=START, banned_ids=(PAD,), length_penalty=1.0)
    g6 = SearchConfig(num_beams=1, max_new_tokens=6, **base)
    b3 = SearchConfig(num_beams=3, max_new_tokens=6, **base)
    g2 = SearchConfig(num_beams=1, max_new_tokens=2, **base)

    def alone(source: int, cfg: SearchConfig):
        return search(row_step, sources(source), cfg)[0]

    arrivals = {
        0: Joiners(sources(1, 2), ["a", "b"], [b3, g6]),
        1: Joiners(sources(3, 1), ["c", "d"], [g2, b3]),
        2: Joiners(sources(2), ["e"], [b3]),
    }
    step = [0]

    def join():
        step[0] += 1
        return arrivals.get(step[0] - 1)

    finished: dict = {}
    decode(row_step, sources(), join, finished.__setitem__)
    want = {"a": (1, b3), "b": (2, g6), "c": (3, g2), "d": (1, b3), "e": (2, b3)}
    assert finished == {k: alone(*v) for k, v in want.items()}
    assert len(finished["c"].tokens) <= 2


def test_the_cache_is_written_in_place_padded_on_the_right_and_trimmed_by_chunks() -> None:
    chunk = CACHE_CHUNK
    state = sources(1)
    assert state.past_keys.shape[3] == chunk and state.positions.tolist() == [0]
    for t in range(chunk):  # a new key per step at the row's position; grows when full
        state.advance(np.full((1, 1, 1, 1, 16), t + 1, np.float32), new_columns(state)[1])
    assert state.past_keys.shape[3] == 2 * chunk and state.positions.tolist() == [chunk]
    assert state.past_keys[0, 0, 0, :, 0].tolist() == [*range(1, chunk + 1), *[0] * chunk]
    both = DecoderState.concatenate([state, sources(2, 3)])
    assert both.rows == 3 and both.past_keys.shape[3] == 2 * chunk
    assert both.past_keys[0, :, 0, 0, 0].tolist() == [1.0, 0.0, 0.0]  # right padding
    assert both.positions.tolist() == [chunk, 0, 0]
    # rows at different positions each write their own column
    both.advance(np.full((1, 3, 1, 1, 16), 7, np.float32), new_columns(both)[1])
    assert both.past_keys[0, 0, 0, chunk, 0] == 7 and both.past_keys[0, 1, 0, 0, 0] == 7
    assert both.positions.tolist() == [chunk + 1, 1, 1]
    # the first row leaves: the chunk only it needed goes too
    rest = both.take(np.array([1, 2]))
    assert rest.past_keys.shape[3] == chunk and rest.positions.tolist() == [1, 1]
    assert rest.past_keys[0, :, 0, 0, 0].tolist() == [7.0, 7.0]


def test_top_sorted_is_a_stable_argsort_of_the_best_n() -> None:
    """Beam search ranks its candidates with top_sorted: the same order as a stable
    argsort (ties by index), -inf and many ties included."""
    from genserve.translation.search import top_sorted

    rng = np.random.default_rng(0)
    for trial in range(300):
        b, n = int(rng.integers(1, 5)), int(rng.integers(1, 10))
        m = int(rng.integers(1, 300)) if trial % 2 else int(rng.integers(300, 3000))
        scores = rng.integers(-5, 5, size=(b, m)).astype(np.float32)  # many ties
        if trial % 3 == 0:
            scores = rng.normal(size=(b, m)).astype(np.float32)
        if trial % 5 == 0:
            scores[:, ::3] = -np.inf
        if trial % 7 == 0:  # peaked rows (a real distribution): the best few in one chunk
            scores[:, : m // 10] += 50
        want = np.argsort(-scores, axis=1, kind="stable")[:, :n]
        assert np.array_equal(top_sorted(scores, n), want), trial


def test_a_decoder_that_returns_logits_is_refused_with_what_to_do() -> None:
    """Folders exported before the decoder returned log-probabilities: the search would
    read raw logits as probabilities, so loading one fails, saying to export it again."""
    from types import SimpleNamespace
    from typing import Any, cast

    from genserve.errors import ModelIntegrityError
    from genserve.translation.translator import Seq2Seq

    old = cast(Any, SimpleNamespace(outputs={"logits": None, "new_keys": None}))
    with pytest.raises(ModelIntegrityError, match="export it again"):
        Seq2Seq(old, old, {"layers": 1, "heads": 1, "head_dim": 1})
