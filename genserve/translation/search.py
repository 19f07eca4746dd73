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

from collections.abc import Callable
from dataclasses import dataclass, field

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


@dataclass
class DecoderState:
    """Everything the decoder step needs besides the new tokens; rows along axis 1 / 0."""

    cross_keys: np.ndarray  # (L, N, H, S, Dh)
    cross_values: np.ndarray
    mask: np.ndarray  # (N, S) int64
    past_keys: np.ndarray  # (L, N, H, T, Dh)
    past_values: np.ndarray

    def take(self, rows: np.ndarray) -> DecoderState:
        return DecoderState(
            self.cross_keys[:, rows],
            self.cross_values[:, rows],
            self.mask[rows],
            self.past_keys[:, rows],
            self.past_values[:, rows],
        )


# (tokens (N, 1), state) -> (logits (N, V) float32, present_keys, present_values)
StepFn = Callable[[np.ndarray, DecoderState], tuple[np.ndarray, np.ndarray, np.ndarray]]


def _process(logits: np.ndarray, cfg: SearchConfig, step: int) -> np.ndarray:
    """Banned ids to -inf; at the last allowed step only the eos token remains."""
    if cfg.banned_ids:
        logits[:, list(cfg.banned_ids)] = -np.inf
    if cfg.forced_eos and step == cfg.max_new_tokens - 1:
        logits[:] = -np.inf
        logits[:, cfg.eos_id] = 0.0
    return logits


def log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True)
    shifted = x - m
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def greedy(step: StepFn, state: DecoderState, cfg: SearchConfig) -> list[Hypothesis]:
    """Greedy search for every row of ``state``; finished rows leave the batch."""
    n = state.mask.shape[0]
    hyps = [Hypothesis([], 0.0) for _ in range(n)]
    active = np.arange(n)
    tokens = np.full((n, 1), cfg.start_id, np.int64)
    for t in range(cfg.max_new_tokens):
        logits, state.past_keys, state.past_values = step(tokens, state)
        scores = log_softmax(logits)
        logits = _process(logits, cfg, t)
        nxt = logits.argmax(axis=-1)
        for row, tok in zip(active, nxt, strict=True):
            hyps[row].tokens.append(int(tok))
        chosen = scores[np.arange(len(nxt)), nxt]
        for row, s in zip(active, chosen, strict=True):
            hyps[row].score += float(s)
        keep = nxt != cfg.eos_id
        if not keep.all():
            active, state = active[keep], state.take(np.flatnonzero(keep))
        if len(active) == 0:
            break
        tokens = nxt[keep][:, None]
    return hyps


@dataclass
class _Beams:
    """Beam search state of the batch items still searching (arrays over items first)."""

    items: np.ndarray  # original batch index of each item
    running: list[list[list[int]]]  # item -> beam -> tokens
    running_scores: np.ndarray  # (B, k)
    finished: list[list[list[int]]] = field(default_factory=list)
    finished_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    finished_flags: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


def beam_search(step: StepFn, state: DecoderState, cfg: SearchConfig) -> list[Hypothesis]:
    """Beam search (``cfg.num_beams`` >= 2) for every row of ``state``."""
    k = cfg.num_beams
    b = state.mask.shape[0]
    # Each batch item's rows are repeated k times: row = item * k + beam.
    state = state.take(np.repeat(np.arange(b), k))
    running_scores = np.zeros((b, k), np.float32)
    running_scores[:, 1:] = NEG
    beams = _Beams(
        items=np.arange(b),
        running=[[[] for _ in range(k)] for _ in range(b)],
        running_scores=running_scores,
        finished=[[[] for _ in range(k)] for _ in range(b)],
        finished_scores=np.full((b, k), NEG, np.float32),
        finished_flags=np.zeros((b, k), bool),
    )
    results: dict[int, Hypothesis] = {}
    tokens = np.full((b * k, 1), cfg.start_id, np.int64)
    n_keep = 2 * k
    for t in range(cfg.max_new_tokens):
        cur_len = t + 1  # the start token plus t generated tokens
        logits, state.past_keys, state.past_values = step(tokens, state)
        log_probs = _process(log_softmax(logits.astype(np.float32)), cfg, t)
        nb = len(beams.items)
        vocab = log_probs.shape[-1]
        acc = (log_probs.reshape(nb, k, vocab) + beams.running_scores[:, :, None]).reshape(nb, -1)
        top = np.argsort(-acc, axis=1, kind="stable")[:, :n_keep]
        top_scores = np.take_along_axis(acc, top, axis=1)
        top_beam, top_tok = top // vocab, top % vocab
        hits = (top_tok == cfg.eos_id) | (cur_len + 1 >= cfg.max_new_tokens + 1)

        # Finished hypotheses: only eos among the best k candidates count.
        norm = top_scores / float(cur_len) ** cfg.length_penalty
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
        beams.finished_flags = np.array(new_flags)

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
        rows = (np.arange(nb)[:, None] * k + src_beam).reshape(-1)

        # transformers' early_stopping=False heuristic, decided on the new length.
        best_running = beams.running_scores[:, 0] / float(cur_len) ** cfg.length_penalty
        worst = np.where(
            beams.finished_flags, beams.finished_scores.min(axis=1, keepdims=True), NEG
        )
        searching = (best_running[:, None] > worst).any(axis=1)
        if hits.all():
            searching[:] = False
        for done in np.flatnonzero(~searching):
            results[int(beams.items[done])] = Hypothesis(
                beams.finished[done][0], float(beams.finished_scores[done, 0])
            )
        if not searching.any():
            break
        keep_items = np.flatnonzero(searching)
        keep_rows = (keep_items[:, None] * k + np.arange(k)).reshape(-1)
        state = state.take(rows[keep_rows])
        tokens = new_tok[keep_items].reshape(-1, 1)
        beams = _Beams(
            items=beams.items[keep_items],
            running=[beams.running[i] for i in keep_items],
            running_scores=beams.running_scores[keep_items],
            finished=[beams.finished[i] for i in keep_items],
            finished_scores=beams.finished_scores[keep_items],
            finished_flags=beams.finished_flags[keep_items],
        )
    return [results[i] for i in range(b)]
