"""Stage 4, the filter (docs/method.md §2.4): a call is kept when the weighted cross-entropy of the text
after it drops by at least τ_f with its result, against no call and the call without result.

The weighted cross-entropy L_i(z) of many (prefix, text, position) at once: each scored row is the
sequence `[BOS?] z x` (the paper's placement of z), or `[BOS?] x_<i z x_≥i` for an inline request (an
option, `AnnotateConfig.filter_placement`); L_i(z) = −Σ_{t<5} w_t · log p(x_{i+t} | BOS?, z, x_{<i+t}),
with w~_t = max(0, 1 − 0.2t) normalised to sum to one. Only the ≤ 5 scored positions of a row go
through the output projection, vocabulary-chunked (see jtoolformer.losses).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import jax
import numpy as np
from jax.sharding import Mesh

from jtoolformer.annotate.call_sites import char_position
from jtoolformer.annotate.candidates_file import Candidate
from jtoolformer.annotate.merge import KeptCall, spaced_call
from jtoolformer.annotate.stats import REPORT_THRESHOLDS, AnnotationStats
from jtoolformer.host_memory import release_freed_memory
from jtoolformer.losses import output_head, token_logprobs
from jtoolformer.models import ModelConfig, forward
from jtoolformer.shapes import bucket, coarse_rows, on_mesh, padded_rows
from jtoolformer.tools.base import Tool
from jtoolformer.tools.calls import ToolCall, format_call

RAW_WEIGHTS = np.maximum(0.0, 1.0 - 0.2 * np.arange(5))
WEIGHTS = RAW_WEIGHTS / RAW_WEIGHTS.sum()
SPAN = int(np.count_nonzero(RAW_WEIGHTS))

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_STATED_WITHIN = 20  # characters after the call in which the text must state a numeric result


def as_number(text: str) -> Fraction | None:
    """A plain number ("1,200", "-4.5", " 36 ") as an exact fraction; None for anything else."""
    text = text.replace(",", "").strip()
    return Fraction(text) if re.fullmatch(r"-?\d+(?:\.\d+)?", text) else None


def same_number(a: str, b: str) -> bool:
    """Equal as numbers up to 0.01 (results are rounded to 2 decimals); otherwise equal as text."""
    x, y = as_number(a), as_number(b)
    if x is None or y is None:
        return a.strip() == b.strip()
    return abs(x - y) <= Fraction(1, 100)


def states_result(call_input: str, result: str, text: str, char_position: int) -> bool:
    """The check of `result_check: stated_next`: the call computes something (its result is not its
    input) and, where the result is a number, the text's first number after the call is that number
    ("24 + 16 = [Calculator(24 + 16) → 40] 40"). Non-numeric results pass the second test unchecked."""
    if same_number(call_input, result):
        return False
    if as_number(result) is None:
        return True
    stated = _NUMBER.search(text, char_position, char_position + _STATED_WITHIN)
    return stated is not None and same_number(stated.group().rstrip(","), result)



@dataclass(frozen=True)
class ScoreRequest:
    """L_i(prefix) for text x: `prefix` and `x` are token ids; i is the 0-based first scored token.
    `inline`: z goes right before x_i instead of before the whole text."""

    prefix: tuple[int, ...]
    x: tuple[int, ...]
    i: int
    inline: bool = False

    def sequence_key(self) -> tuple:
        """Requests with equal keys are scored on one sequence: prefixed z is shared by every i."""
        return self.prefix, self.x, self.i if self.inline and self.prefix else None


@dataclass(frozen=True)
class _Segment:
    """One scored sequence `[BOS?] z x[:end]` (or `[BOS?] x[:i] z x[i:end]`), shared by every request
    with the same sequence key."""

    tokens: tuple[int, ...]
    x_start: int  # x_j (for every scored j) is tokens[x_start + j]


@dataclass(frozen=True)
class ScoringModel:
    """What the filter's programs depend on besides their arguments. Hashable and passed to them as a
    static argument: every Scorer of an equal config and mesh shares what was compiled, and no program
    holds on to params."""

    cfg: ModelConfig
    mesh: Mesh


def _hidden(model: ScoringModel, params, seqs, segment_ids, positions):
    """Hidden states [rows · width, D] of packed rows."""
    hidden, _ = forward(model.cfg, model.mesh, params, seqs, positions, segment_ids=segment_ids, return_hidden=True)
    return hidden.reshape(-1, hidden.shape[-1])


def _losses(model: ScoringModel, params, hidden, gather, targets, weights):
    picked = hidden[gather]  # [N, SPAN, D]
    w, b = output_head(params, model.cfg)
    logp = token_logprobs(picked, w, b, targets, impl=model.cfg.logprob_impl, mesh=model.mesh)
    return -(weights * logp).sum(axis=-1)


def _score(model: ScoringModel, params, seqs, segment_ids, positions, gather, targets, weights):
    return _losses(model, params, _hidden(model, params, seqs, segment_ids, positions), gather, targets, weights)


# Two programs: the forward compiles per (rows, width) only, the small loss per request count; one
# program for both compiled the whole model again for every request count it met.
hidden_program = jax.jit(_hidden, static_argnums=0)
losses_program = jax.jit(_losses, static_argnums=0)
score_program = jax.jit(_score, static_argnums=0)  # both as one, for memory analysis (scripts/plan_memory.py)


class Scorer:
    """Jitted batched L_i(z) for one LM.

    Requests on the same (z, x) share one sequence, long enough for the last of them (causal attention
    makes a longer x exact for every earlier i). Sequences are packed several to a row, each attending
    only to itself with positions from 0, so rows carry little padding; rows and gathered positions
    are padded to buckets so few shapes are compiled.
    """

    def __init__(self, lm, max_rows: int = 32, row_length: int = 256, length_multiple: int = 64):
        self.lm, self.max_rows = lm, max_rows
        self.row_length, self.length_multiple = min(row_length, lm.config.max_positions), length_multiple
        self.bos = [] if lm.config.bos_id is None else [lm.config.bos_id]
        self.model = ScoringModel(lm.config, lm.mesh)

    def _segments(self, requests: Sequence[ScoreRequest]) -> tuple[list[_Segment], list[int]]:
        """The distinct sequences, and which one each request is scored on."""
        ends: dict[tuple, int] = {}
        for r in requests:
            if not 0 <= r.i < len(r.x):
                raise ValueError(f"position i={r.i} is outside the text of {len(r.x)} tokens")
            key = r.sequence_key()
            ends[key] = max(ends.get(key, 0), min(len(r.x), r.i + SPAN))
        index = {key: n for n, key in enumerate(ends)}
        segments = [_Segment((*self.bos, *x[:at or 0], *z, *x[at or 0 : end]), len(self.bos) + len(z))
                    for (z, x, at), end in ends.items()]
        longest = max(len(s.tokens) for s in segments)
        if longest > self.lm.config.max_positions:
            raise ValueError(f"a scored sequence has {longest} tokens, more than the model's "
                             f"{self.lm.config.max_positions} positions")
        return segments, [index[r.sequence_key()] for r in requests]

    @staticmethod
    def _pack(lengths: Sequence[int], width: int) -> list[list[int]]:
        """Segments (by index) packed into rows of `width` tokens, longest first into the first row with
        room."""
        rows: list[list[int]] = []
        free: list[int] = []
        for n in sorted(range(len(lengths)), key=lambda n: -lengths[n]):
            row = next((r for r, room in enumerate(free) if room >= lengths[n]), None)
            if row is None:
                rows.append([])
                free.append(width)
                row = len(rows) - 1
            rows[row].append(n)
            free[row] -= lengths[n]
        return rows

    def _arrays(self, segments: list[_Segment], rows: list[list[int]], requests: Sequence[tuple[int, ScoreRequest]],
                width: int):
        """Device inputs for packed rows and the requests scored on them."""
        n_rows = coarse_rows(len(rows), self.lm.mesh, self.max_rows)  # the model's forward: few sizes
        seqs = np.zeros((n_rows, width), np.int32)
        segment_ids = np.zeros((n_rows, width), np.int32)
        positions = np.zeros((n_rows, width), np.int32)
        offset = {}  # segment → its first token's index in the flattened rows
        for r, members in enumerate(rows):
            at = 0
            for k, n in enumerate(members):
                tokens = segments[n].tokens
                seqs[r, at : at + len(tokens)] = tokens
                segment_ids[r, at : at + len(tokens)] = k + 1
                positions[r, at : at + len(tokens)] = np.arange(len(tokens))
                offset[n] = r * width + at
                at += len(tokens)
        n_requests = padded_rows(len(requests), self.lm.mesh)
        gather = np.zeros((n_requests, SPAN), np.int32)
        targets = np.zeros((n_requests, SPAN), np.int32)
        weights = np.zeros((n_requests, SPAN), np.float32)
        for q, (n, req) in enumerate(requests):
            x_at = offset[n] + segments[n].x_start
            for t in range(SPAN):
                j = req.i + t
                if j < len(req.x) and segments[n].x_start + j >= 1:  # x_0 with nothing before it is not scored
                    gather[q, t], targets[q, t], weights[q, t] = x_at + j - 1, req.x[j], WEIGHTS[t]
        return seqs, segment_ids, positions, gather, targets, weights

    def __call__(self, requests: Sequence[ScoreRequest]) -> np.ndarray:
        """L_i(z) of each request, float32, in order."""
        out = np.zeros(len(requests), np.float32)
        if not requests:
            return out
        segments, used = self._segments(requests)
        lengths = [len(s.tokens) for s in segments]
        width = max(bucket(max(lengths), self.length_multiple), self.row_length)  # one width unless a sequence is longer
        rows = self._pack(lengths, width)
        for start in range(0, len(rows), self.max_rows):
            chunk = rows[start : start + self.max_rows]
            in_chunk = {n for members in chunk for n in members}
            idx = [q for q, n in enumerate(used) if n in in_chunk]
            arrays = self._arrays(segments, chunk, [(used[q], requests[q]) for q in idx], width)
            hidden = hidden_program(self.model, self.lm.params, *on_mesh(self.lm.mesh, *arrays[:3]))
            out[idx] = np.asarray(losses_program(self.model, self.lm.params, hidden, *arrays[3:]))[: len(idx)]
        release_freed_memory()
        return out


def weighted_losses(lm, x_ids: Sequence[int], i: int, prefixes: Sequence[Sequence[int]]) -> np.ndarray:
    """L_i(z) for each prefix z (token ids; an empty list is ε) over the sequence `[BOS?] z x`, with
    the LM's current params (calls with an equal model config and mesh reuse the compiled programs)."""
    x = tuple(int(t) for t in x_ids)
    return Scorer(lm)([ScoreRequest(tuple(int(t) for t in z), x, i) for z in prefixes])


@dataclass(frozen=True)
class FilterSettings:
    threshold: float  # τ_f
    inline: bool = False  # z scored where it is inserted, against the call without result
    result_check: str = "none"  # "stated_next": a call is scored only when the text's next number is its result


@dataclass
class ExecutedCall:
    """One distinct call at one position of a document, its (non-empty) result and every sample of it."""

    doc: int  # the document's index among those annotated
    x: tuple[int, ...]
    i: int
    call: ToolCall
    result: str
    samples: list[Candidate]


def filter_calls(scorer: Scorer, tool: Tool, executed: Sequence[ExecutedCall], texts: Sequence[str],
                 settings: FilterSettings, stats: AnnotationStats) -> list[tuple[int, KeptCall, Candidate]]:
    """Keeps a call when min(L(ε), L(e(c, ε))) − L(e(c, r)) ≥ τ_f (the paper's prefix placement), or
    L(e(c, ε)) − L(e(c, r)) ≥ τ_f with both calls inline. Returns (document, kept call, its candidate)
    for each kept call; every call's first sample records its losses and outcome."""
    tok = scorer.lm.tokenizer
    requests: dict[ScoreRequest, None] = {}
    scored = []
    for e in executed:
        first = e.samples[0]
        char = char_position(tok, e.x, e.i)
        if char is None:
            first.outcome = "unaligned"
            stats.skipped["unaligned_position"] += 1
            continue
        if settings.result_check == "stated_next" and not states_result(e.call.input, e.result, texts[e.doc], char):
            first.outcome = "result_not_stated"
            stats.skipped["result_not_stated"] += 1
            continue

        def z(result: str, e: ExecutedCall = e, char: int = char) -> tuple[int, ...]:
            text = format_call(e.call, result, quoted=tool.quoted_input)
            return tuple(tok.encode(spaced_call(text, texts[e.doc], char) if settings.inline else text))

        plus = ScoreRequest(z(e.result), e.x, e.i, settings.inline)
        minus_call = ScoreRequest(z(""), e.x, e.i, settings.inline)
        minus_empty = ScoreRequest((), e.x, e.i)
        requests.update(dict.fromkeys([plus, minus_call, minus_empty]))
        scored.append((e, char, plus, minus_call, minus_empty))
    if not scored:
        return []
    order = list(requests)
    losses = dict(zip(order, scorer(order)))
    kept = []
    for e, char, plus, minus_call, minus_empty in scored:
        first = e.samples[0]
        first.loss_plus, first.loss_minus_call = float(losses[plus]), float(losses[minus_call])
        first.loss_minus_empty = float(losses[minus_empty])
        loss_minus = first.loss_minus_call if settings.inline else min(first.loss_minus_call, first.loss_minus_empty)
        first.gain = gain = loss_minus - first.loss_plus
        for reported in REPORT_THRESHOLDS:
            stats.kept[str(reported)] += gain >= reported
        if gain < settings.threshold:
            first.outcome = "below_threshold"
            continue
        first.outcome = "kept"
        stats.kept["tool"] += 1
        kept.append((e.doc, KeptCall(tool.name, e.call.input, e.result, e.i, char, first.loss_plus, loss_minus,
                                     tool.quoted_input), first))
    return kept
