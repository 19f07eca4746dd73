"""Batched greedy and beam search over a step-wise decoder with a KV cache, in numpy.

The search follows transformers' ``generate`` for encoder-decoder models token for token:
the pad token (and any other banned id) is never produced, the end-of-sequence token is
forced at the last allowed position, beams keep the ``2 * num_beams`` best continuations,
finished hypotheses are scored by ``sum(log p) / length ** length_penalty`` and a batch
item stops when no running beam can beat its worst finished one (transformers'
``early_stopping=False`` heuristic). Unlike transformers, rows and batch items that have
finished are dropped from the decoder batch at once, so their cost stops too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

NEG = -1.0e9


@dataclass(frozen=True)
class SearchConfig:
    """Decoding constants of a model (ids) and per-request options."""

    eos_id: int
    start_id: int
    banned_ids: tuple[int, ...] = ()
    forced_eos: bool = True
    num_beams: int = 1
    length_penalty: float = 1.0
    max_new_tokens: int = 128


@dataclass
class Hypothesis:
    tokens: list[int]  # generated ids, without the start token, with the final eos if any
    score: float  # beam: the length-penalised score; greedy: the sum of log-probabilities


CACHE_CHUNK = 16  # the self-attention cache grows this many columns at a time
# The decoder step's per-layer inputs: ``{name}_{layer}``, each (N, H, T or S, Dh).
CACHE_INPUTS = ("past_keys", "past_values", "cross_keys", "cross_values")


def cache_width(longest: int) -> int:
    """Cache columns for rows whose longest past is ``longest`` tokens: room for the next
    step's key, rounded up to whole chunks (so the cache is copied once every
    ``CACHE_CHUNK`` steps, not every step)."""
    return CACHE_CHUNK * (longest // CACHE_CHUNK + 1)


@dataclass
class DecoderState:
    """Everything the decoder step needs besides the new tokens; rows along axis 1 / 0.

    The self-attention cache has spare columns: row i's past is its first
    ``positions[i]`` columns and the rest is padding it never attends to. The decoder
    step returns only each row's new key and value, which ``advance`` writes in place at
    column ``positions[i]``; the cache grows by whole chunks. Rows may have started at
    different steps (iteration-level batching: a row joins a running search between two
    steps), so each row's columns are where they would be alone."""

    cross_keys: np.ndarray  # (L, N, H, S, Dh)
    cross_values: np.ndarray
    mask: np.ndarray  # (N, S) int64
    past_keys: np.ndarray  # (L, N, H, W, Dh), W > every position
    past_values: np.ndarray
    positions: np.ndarray  # (N,) int64: tokens each row has had

    @classmethod
    def start(
        cls, cross_keys: np.ndarray, cross_values: np.ndarray, mask: np.ndarray
    ) -> DecoderState:
        """Encoded rows before their first step: an empty cache, one chunk wide."""
        layers, rows, heads, _, head_dim = cross_keys.shape
        past = np.zeros((layers, rows, heads, cache_width(0), head_dim), np.float32)
        return cls(cross_keys, cross_values, mask, past, past.copy(), np.zeros(rows, np.int64))

    @property
    def rows(self) -> int:
        return int(self.mask.shape[0])

    def feeds(self, tokens: np.ndarray) -> dict[str, np.ndarray]:
        """The decoder step's inputs (export.py): each layer's caches are views of the
        stacked arrays, which ONNX Runtime reads without a copy."""
        out = {
            "input_ids": tokens,
            "encoder_attention_mask": self.mask,
            "positions": self.positions,
        }
        for name in CACHE_INPUTS:
            stacked = getattr(self, name)
            out.update((f"{name}_{i}", stacked[i]) for i in range(len(stacked)))
        return out

    def take(self, rows: np.ndarray) -> DecoderState:
        """These rows only, without the padding columns none of them needs (of rows that
        left: past chunks beyond the longest past kept, source columns nobody reads)."""
        positions, src = self.positions[rows], self.mask[rows]
        width = cache_width(int(positions.max(initial=0)))
        s = int(np.flatnonzero(src.any(axis=0)).max(initial=-1)) + 1
        return DecoderState(
            self.cross_keys[:, rows, :, :s],
            self.cross_values[:, rows, :, :s],
            src[:, :s],
            self.past_keys[:, rows, :, :width],
            self.past_values[:, rows, :, :width],
            positions,
        )

    def reorder(self, rows: np.ndarray) -> DecoderState:
        """Each row takes the past of ``rows``' row, which has the same source (a beam
        takes another beam's past within its item): the sources are left as they are."""
        return DecoderState(
            self.cross_keys,
            self.cross_values,
            self.mask,
            self.past_keys[:, rows],
            self.past_values[:, rows],
            self.positions[rows],
        )

    @classmethod
    def concatenate(cls, parts: list[DecoderState]) -> DecoderState:
        """The rows of every part, in order: sources and pasts padded on the right to the
        longest (masked by ``mask`` and ``positions``); a lone part with rows as it is."""
        full = [p for p in parts if p.rows]
        if len(full) == 1:
            return full[0]
        parts = full or parts[:1]
        s = max(p.mask.shape[1] for p in parts)
        t = max(p.past_keys.shape[3] for p in parts)

        def join(name: str, axis: int, width: int) -> np.ndarray:
            arrays = [getattr(p, name) for p in parts]
            padded = []
            for x in arrays:
                widths = [(0, 0)] * x.ndim
                widths[axis] = (0, width - x.shape[axis])
                padded.append(np.pad(x, widths) if x.shape[axis] < width else x)
            return np.concatenate(padded, axis=1 if arrays[0].ndim == 5 else 0)

        return cls(
            join("cross_keys", 3, s),
            join("cross_values", 3, s),
            join("mask", 1, s),
            join("past_keys", 3, t),
            join("past_values", 3, t),
            np.concatenate([p.positions for p in parts]),
        )

    def advance(self, new_keys: np.ndarray, new_values: np.ndarray) -> None:
        """After a step: each row's new key and value (L, N, H, 1, Dh) written at its
        position (in place: a state's cache is its own), one more token for every row,
        and another chunk of columns when the longest past fills the cache."""
        rows = np.arange(self.rows)
        # advanced indices split by a slice come first: (N, L, H, Dh)
        self.past_keys[:, rows, :, self.positions] = new_keys[:, :, :, 0].swapaxes(0, 1)
        self.past_values[:, rows, :, self.positions] = new_values[:, :, :, 0].swapaxes(0, 1)
        self.positions = self.positions + 1
        self.widen(cache_width(int(self.positions.max(initial=0))))

    def widen(self, width: int) -> None:
        """At least ``width`` cache columns: padding added on the right (a copy)."""
        if width > self.past_keys.shape[3]:
            grow = [(0, 0), (0, 0), (0, 0), (0, width - self.past_keys.shape[3]), (0, 0)]
            self.past_keys = np.pad(self.past_keys, grow)
            self.past_values = np.pad(self.past_values, grow)


@dataclass
class Joiners:
    """Rows that join a running search between two steps: their encoded state (no past
    yet), an id per row, under which ``DoneFn`` hands back each one's hypothesis, and
    each row's search constants (None: those of the search it joins)."""

    state: DecoderState
    ids: list[Hashable]
    configs: list[SearchConfig] | None = None


JoinFn = Callable[[], Joiners | None]  # asked before every step; None: nobody new
DoneFn = Callable[[Hashable, Hypothesis], None]  # a row finished (it has left the batch)


# (tokens (N, 1), state) -> (log-probabilities (N, V) float32, normalised over V: the
# decoder's log_softmax; new_keys, new_values (L, N, H, 1, Dh))
StepFn = Callable[[np.ndarray, DecoderState], tuple[np.ndarray, np.ndarray, np.ndarray]]


def _process(log_probs: np.ndarray, cfg: SearchConfig, steps: np.ndarray) -> np.ndarray:
    """In place: banned ids to -inf; a row at its last allowed step (``steps``: each
    row's count of tokens so far) may only end."""
    if cfg.banned_ids:
        log_probs[:, list(cfg.banned_ids)] = -np.inf
    if cfg.forced_eos:
        last = steps == cfg.max_new_tokens - 1
        if last.any():
            log_probs[last] = -np.inf
            log_probs[last, cfg.eos_id] = 0.0
    return log_probs


def top_sorted(scores: np.ndarray, n: int) -> np.ndarray:
    """``np.argsort(-scores, axis=1, kind="stable")[:, :n]`` without sorting whole rows.

    A beam step ranks beams x vocabulary candidates (232,404 per item at opus-mt size),
    where a full sort, and even a partition, cost more than the decoder step. Each row is
    cut into chunks (about the square root of its width, at least ``4 n``); the n-th
    largest of the chunks' maxima is at most the row's n-th largest value, so the
    candidates are the values at or above it (ties included) in the chunks whose maximum
    reaches it, and in the few columns past the last whole chunk. Only those are ordered,
    by value, then index."""
    rows, width = scores.shape
    chunks = max(4 * n, math.isqrt(width))
    if n >= width or width < 8 * chunks:  # narrow rows: sorting them is cheap
        return np.argsort(-scores, axis=1, kind="stable")[:, :n]
    span = width // chunks
    body = scores[:, : span * chunks].reshape(rows, chunks, span)
    maxima = body.max(axis=2)
    bound = np.partition(maxima, chunks - n, axis=1)[:, chunks - n]
    hit_row, hit_chunk = np.nonzero(maxima >= bound[:, None])
    block = body[hit_row, hit_chunk]  # (chunks reached, span)
    at, offset = np.nonzero(block >= bound[hit_row, None])
    tail_row, tail_col = np.nonzero(scores[:, span * chunks :] >= bound[:, None])
    row = np.concatenate([hit_row[at], tail_row])  # at least n per row
    col = np.concatenate([hit_chunk[at] * span + offset, tail_col + span * chunks])
    order = np.lexsort((col, -scores[row, col], row))
    first = np.searchsorted(row[order], np.arange(rows))  # each row's best candidate
    return col[order][first[:, None] + np.arange(n)]


@dataclass
class _Beams:
    """Beam search state of the batch items still searching (arrays over items first)."""

    items: list[Hashable]  # the id of each item
    running: list[list[list[int]]]  # item -> beam -> tokens
    running_scores: np.ndarray  # (B, k)
    finished: list[list[list[int]]]
    finished_scores: np.ndarray  # (B, k)
    finished_flags: np.ndarray  # (B, k)
    steps: np.ndarray  # (B,): tokens each item has generated so far

    @classmethod
    def start(cls, ids: list[Hashable], k: int) -> _Beams:
        b = len(ids)
        running_scores = np.zeros((b, k), np.float32)
        running_scores[:, 1:] = NEG
        return cls(
            items=list(ids),
            running=[[[] for _ in range(k)] for _ in range(b)],
            running_scores=running_scores,
            finished=[[[] for _ in range(k)] for _ in range(b)],
            finished_scores=np.full((b, k), NEG, np.float32),
            finished_flags=np.zeros((b, k), bool),
            steps=np.zeros(b, np.int64),
        )

    def take(self, keep: np.ndarray) -> _Beams:
        return _Beams(
            items=[self.items[i] for i in keep],
            running=[self.running[i] for i in keep],
            running_scores=self.running_scores[keep],
            finished=[self.finished[i] for i in keep],
            finished_scores=self.finished_scores[keep],
            finished_flags=self.finished_flags[keep],
            steps=self.steps[keep],
        )

    def extend(self, other: _Beams) -> _Beams:
        return _Beams(
            items=self.items + other.items,
            running=self.running + other.running,
            running_scores=np.concatenate([self.running_scores, other.running_scores]),
            finished=self.finished + other.finished,
            finished_scores=np.concatenate([self.finished_scores, other.finished_scores]),
            finished_flags=np.concatenate([self.finished_flags, other.finished_flags]),
            steps=np.concatenate([self.steps, other.steps]),
        )


Finished = list[tuple[Hashable, Hypothesis]]


class _Greedy:
    """Greedy search of the items with one ``SearchConfig``: one decoder row each."""

    copies = 1

    def __init__(self, cfg: SearchConfig) -> None:
        self.cfg = cfg
        self.ids: list[Hashable] = []
        self.hyps: list[Hypothesis] = []
        self.steps = np.zeros(0, np.int64)
        self.tokens = np.zeros((0, 1), np.int64)

    @property
    def rows(self) -> int:
        return len(self.ids)

    def add(self, ids: list[Hashable]) -> None:
        self.ids += ids
        self.hyps += [Hypothesis([], 0.0) for _ in ids]
        self.steps = np.concatenate([self.steps, np.zeros(len(ids), np.int64)])
        start = np.full((len(ids), 1), self.cfg.start_id, np.int64)
        self.tokens = np.concatenate([self.tokens, start])

    def advance(self, log_probs: np.ndarray) -> tuple[np.ndarray | None, Finished]:
        """After a step (``log_probs``: this group's rows, in place): the rows that go on,
        in their new order (None: every row, as it was), and the items that finished."""
        cfg = self.cfg
        # a forced end scores what the model gave it, not the 0 that forced it
        eos_scores = log_probs[:, cfg.eos_id].copy()
        nxt = _process(log_probs, cfg, self.steps).argmax(axis=-1)
        chosen = np.where(nxt == cfg.eos_id, eos_scores, log_probs[np.arange(len(nxt)), nxt])
        for hyp, tok, sc in zip(self.hyps, nxt, chosen, strict=True):
            hyp.tokens.append(int(tok))
            hyp.score += float(sc)
        self.steps += 1
        keep = (nxt != cfg.eos_id) & (self.steps < cfg.max_new_tokens)
        if keep.all():
            self.tokens = nxt[:, None]
            return None, []
        kept = np.flatnonzero(keep)
        finished = [(self.ids[i], self.hyps[i]) for i in np.flatnonzero(~keep)]
        self.ids = [self.ids[i] for i in kept]
        self.hyps = [self.hyps[i] for i in kept]
        self.steps = self.steps[kept]
        self.tokens = nxt[kept][:, None]
        return kept, finished


class _BeamSearch:
    """Beam search (``cfg.num_beams`` >= 2) of the items with one ``SearchConfig``: each
    item's rows are its ``num_beams`` beams, row = item * k + beam."""

    def __init__(self, cfg: SearchConfig) -> None:
        self.cfg = cfg
        self.copies = cfg.num_beams
        self.beams = _Beams.start([], cfg.num_beams)
        self.tokens = np.zeros((0, 1), np.int64)

    @property
    def rows(self) -> int:
        return len(self.beams.items) * self.copies

    def add(self, ids: list[Hashable]) -> None:
        self.beams = self.beams.extend(_Beams.start(ids, self.copies))
        start = np.full((len(ids) * self.copies, 1), self.cfg.start_id, np.int64)
        self.tokens = np.concatenate([self.tokens, start])

    def advance(self, log_probs: np.ndarray) -> tuple[np.ndarray | None, Finished]:
        """As ``_Greedy.advance``: the rows that go on (a beam may continue another
        beam's past) and the items that finished."""
        cfg, beams, k = self.cfg, self.beams, self.copies
        nb = len(beams.items)
        n_keep = 2 * k
        cur_len = (beams.steps + 1).astype(np.float64)  # the start token plus the tokens so far
        row_steps = np.repeat(beams.steps, k)
        log_probs = _process(log_probs.astype(np.float32, copy=False), cfg, row_steps)
        vocab = log_probs.shape[-1]
        log_probs.reshape(nb, k, vocab)[...] += beams.running_scores[:, :, None]
        acc = log_probs.reshape(nb, -1)
        top = top_sorted(acc, n_keep)
        top_scores = np.take_along_axis(acc, top, axis=1)
        top_beam, top_tok = top // vocab, top % vocab
        at_limit = (cur_len + 1 >= cfg.max_new_tokens + 1)[:, None]
        hits = (top_tok == cfg.eos_id) | at_limit

        # Finished hypotheses: only eos among the best k candidates count.
        # float32 like the scores (transformers divides float32 scores by a Python float)
        penalty = (cur_len**cfg.length_penalty).astype(np.float32)[:, None]
        norm = top_scores / penalty
        just_finished = hits.copy()
        just_finished[:, k:] = False
        norm = np.where(just_finished, norm, norm + NEG)
        merged_scores = np.concatenate([beams.finished_scores, norm], axis=1)
        order = np.argsort(-merged_scores, axis=1, kind="stable")[:, :k]
        new_finished, new_flags = [], []
        for i in range(nb):
            cands = [beams.finished[i][j] for j in range(k)] + [
                beams.running[i][top_beam[i, c]] + [int(top_tok[i, c])] for c in range(n_keep)
            ]
            flags = np.concatenate([beams.finished_flags[i], just_finished[i]])
            new_finished.append([cands[j] for j in order[i]])
            new_flags.append(flags[order[i]])
        beams.finished = new_finished
        beams.finished_scores = np.take_along_axis(merged_scores, order, axis=1)
        beams.finished_flags = np.array(new_flags).reshape(nb, k)

        # Running beams: the best k candidates that did not finish.
        running_scores = np.where(hits, top_scores + NEG, top_scores)
        pick = np.argsort(-running_scores, axis=1, kind="stable")[:, :k]
        src_beam = np.take_along_axis(top_beam, pick, axis=1)
        new_tok = np.take_along_axis(top_tok, pick, axis=1)
        beams.running = [
            [beams.running[i][src_beam[i, j]] + [int(new_tok[i, j])] for j in range(k)]
            for i in range(nb)
        ]
        beams.running_scores = np.take_along_axis(running_scores, pick, axis=1)
        beams.steps = beams.steps + 1
        rows = (np.arange(nb)[:, None] * k + src_beam).reshape(-1)

        # transformers' early_stopping=False heuristic, decided on the new length.
        best_running = beams.running_scores[:, 0] / penalty[:, 0]
        worst = np.where(
            beams.finished_flags, beams.finished_scores.min(axis=1, keepdims=True), NEG
        )
        searching = (best_running[:, None] > worst).any(axis=1) & ~hits.all(axis=1)
        finished: Finished = []
        for ended in np.flatnonzero(~searching):
            best = beams.finished[ended][0]
            finished.append(
                (beams.items[ended], Hypothesis(best, float(beams.finished_scores[ended, 0])))
            )
        keep_items = np.flatnonzero(searching)
        self.tokens = new_tok[keep_items].reshape(-1, 1)
        if len(keep_items) == nb:  # every item searches on: its beams swap pasts
            return rows, finished
        self.beams = beams.take(keep_items)
        return rows[(keep_items[:, None] * k + np.arange(k)).reshape(-1)], finished


_Group = _Greedy | _BeamSearch


def decode(step: StepFn, state: DecoderState, join: JoinFn, done: DoneFn) -> None:
    """Decode every row that ``join`` brings until none is left: iteration-level batching.

    ``join`` is asked before every step and may add rows, each with its own
    ``SearchConfig`` (greedy or any number of beams, any length): rows of every config
    share each decoder step, while each config's group of items searches as it would
    alone. ``state`` holds the rows of every group, group after group; a finished item
    leaves at once and goes to ``done``. A row's tokens do not depend on the rows beside
    it."""
    groups: dict[SearchConfig, _Group] = {}
    while True:
        joiners = join()
        if joiners is not None and joiners.state.rows:
            state = _admit(state, groups, joiners)
        if not state.rows:
            return
        if len(groups) == 1:
            tokens = next(iter(groups.values())).tokens
        else:
            tokens = np.concatenate([g.tokens for g in groups.values()])
        log_probs, new_keys, new_values = step(tokens, state)
        state.advance(new_keys, new_values)
        kept, start, moved = [], 0, False
        for cfg, group in list(groups.items()):
            n = group.rows
            rows, finished = group.advance(log_probs[start : start + n])
            moved = moved or rows is not None
            kept.append(np.arange(start, start + n) if rows is None else rows + start)
            start += n
            for item, hyp in finished:
                done(item, hyp)
            if not group.rows:
                del groups[cfg]
        if moved:
            state = state.take(np.concatenate(kept))


def _admit(
    state: DecoderState, groups: dict[SearchConfig, _Group], joiners: Joiners
) -> DecoderState:
    """``state`` with ``joiners``' rows added to their configs' groups (a group made for
    a config not yet searching), each row as its group's ``copies`` decoder rows
    (beams); the rows stay group after group."""
    configs = joiners.configs
    assert configs is not None and len(configs) == joiners.state.rows
    spans: dict[SearchConfig, np.ndarray] = {}
    start = 0
    for cfg, group in groups.items():
        spans[cfg] = np.arange(start, start + group.rows)
        start += group.rows
    parts, added = [state], {}
    for cfg in dict.fromkeys(configs):  # in order of first appearance
        mine = [i for i, c in enumerate(configs) if c == cfg]
        if cfg not in groups:
            groups[cfg] = _Greedy(cfg) if cfg.num_beams == 1 else _BeamSearch(cfg)
            spans[cfg] = np.arange(0)
        group = groups[cfg]
        group.add([joiners.ids[i] for i in mine])
        if len(mine) == joiners.state.rows and group.copies == 1:
            parts.append(joiners.state)  # every row, once: no copy
        else:
            parts.append(joiners.state.take(np.repeat(np.array(mine), group.copies)))
        added[cfg] = np.arange(start, start + len(mine) * group.copies)
        start += len(mine) * group.copies
    state = DecoderState.concatenate(parts)
    order = np.concatenate([np.concatenate([spans[c], added.get(c, spans[c][:0])]) for c in groups])
    if (order != np.arange(len(order))).any():  # a group that had rows got more
        state = state.take(order)
    return state


def search(
    step: StepFn,
    state: DecoderState,
    cfg: SearchConfig,
    join: JoinFn | None = None,
    done: DoneFn | None = None,
) -> list[Hypothesis]:
    """Greedy (``cfg.num_beams`` 1) or beam search for every row of ``state``, a beam
    search's row bringing its ``num_beams`` decoder rows; finished rows leave the batch at
    once. ``join``, asked before every step, may add rows (iteration-level batching; of
    config ``cfg`` unless they name their own), whose hypotheses go to ``done`` as each
    finishes (``state``'s own rows too). Returns ``state``'s own hypotheses, in order. A
    row's tokens do not depend on the rows beside it."""
    own: list[Hashable] = list(range(state.rows))
    results: dict[Hashable, Hypothesis] = {}
    first: list[Joiners | None] = [Joiners(state, own, [cfg] * state.rows)]

    def joining() -> Joiners | None:
        joiners = first.pop() if first else join() if join is not None else None
        if joiners is not None and joiners.configs is None:
            joiners = Joiners(joiners.state, joiners.ids, [cfg] * joiners.state.rows)
        return joiners

    def finished(item: Hashable, hyp: Hypothesis) -> None:
        results[item] = hyp
        if done is not None:
            done(item, hyp)

    decode(step, state.take(np.arange(0)), joining, finished)
    return [results[i] for i in own]
