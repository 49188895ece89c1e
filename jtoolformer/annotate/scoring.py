"""The weighted cross-entropy L_i(z) of TOOLFORMER.md §2, for many (prefix, text, position) at once.

Each scored row is the sequence `[BOS?] z x`; L_i(z) = −Σ_{t<5} w_t · log p(x_{i+t} | BOS?, z, x_{<i+t}),
with w~_t = max(0, 1 − 0.2t) normalised to sum to one. Only the ≤ 5 scored positions of a row go
through the output projection, vocabulary-chunked (see jtoolformer.losses).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from jtoolformer.decoding import bucket
from jtoolformer.losses import output_head, token_logprobs
from jtoolformer.sharding import activation_mesh, batch_sharding

RAW_WEIGHTS = np.maximum(0.0, 1.0 - 0.2 * np.arange(5))
WEIGHTS = RAW_WEIGHTS / RAW_WEIGHTS.sum()
SPAN = int(np.count_nonzero(RAW_WEIGHTS))


@dataclass(frozen=True)
class ScoreRequest:
    """L_i(prefix) for text x: `prefix` and `x` are token ids; i is the 0-based first scored token."""

    prefix: tuple[int, ...]
    x: tuple[int, ...]
    i: int


class Scorer:
    """Jitted batched L_i(z) for one LM; rows are padded to buckets so few shapes are compiled."""

    def __init__(self, lm, max_rows: int = 32, length_multiple: int = 64):
        self.lm, self.max_rows, self.length_multiple = lm, max_rows, length_multiple
        self.bos = [] if lm.config.bos_id is None else [lm.config.bos_id]
        self._score = jax.jit(self._score_impl)

    def _score_impl(self, params, seqs, lengths, gather, targets, weights):
        lm = self.lm
        segment_ids = (jnp.arange(seqs.shape[1])[None] < lengths[:, None]).astype(jnp.int32)
        positions = jnp.broadcast_to(jnp.arange(seqs.shape[1]), seqs.shape)
        with activation_mesh(lm.mesh):
            hidden, _ = lm.model.apply({"params": params}, seqs, positions, segment_ids=segment_ids,
                                       return_hidden=True)
        picked = jnp.take_along_axis(hidden, gather[..., None], axis=1)  # [N, SPAN, D]
        w, b = output_head(params, lm.config)
        return -(weights * token_logprobs(picked, w, b, targets)).sum(axis=-1)

    @staticmethod
    def _scored_x(req: ScoreRequest) -> tuple[int, ...]:
        """x up to its last scored token: under causal attention nothing later changes L_i."""
        return req.x[: req.i + SPAN]

    def _rows(self, requests: Sequence[ScoreRequest]):
        n = len(requests)
        rows = self.lm.decoder.padded_rows(n)
        xs = [self._scored_x(r) for r in requests]
        seq_lens = [len(self.bos) + len(r.prefix) + len(x) for r, x in zip(requests, xs)]
        width = bucket(max(seq_lens), self.length_multiple)
        if width > self.lm.config.max_positions:
            raise ValueError(f"a scored sequence has {max(seq_lens)} tokens, more than the model's "
                             f"{self.lm.config.max_positions} positions")
        seqs = np.zeros((rows, width), np.int32)
        lengths = np.zeros(rows, np.int32)
        gather = np.zeros((rows, SPAN), np.int32)
        targets = np.zeros((rows, SPAN), np.int32)
        weights = np.zeros((rows, SPAN), np.float32)
        for r, (req, x, length) in enumerate(zip(requests, xs, seq_lens)):
            if not 0 <= req.i < len(req.x):
                raise ValueError(f"position i={req.i} is outside the text of {len(req.x)} tokens")
            seqs[r, :length] = [*self.bos, *req.prefix, *x]
            lengths[r] = length
            start = len(self.bos) + len(req.prefix)
            for t in range(SPAN):
                j = req.i + t
                if j < len(req.x) and start + j >= 1:  # x_0 with nothing before it cannot be scored
                    gather[r, t], targets[r, t], weights[r, t] = start + j - 1, req.x[j], WEIGHTS[t]
        return seqs, lengths, gather, targets, weights

    def __call__(self, requests: Sequence[ScoreRequest]) -> np.ndarray:
        """L_i(z) of each request, float32, in order."""
        out = np.zeros(len(requests), np.float32)
        order = sorted(range(len(requests)), key=lambda k: len(requests[k].prefix) + len(self._scored_x(requests[k])))
        for start in range(0, len(order), self.max_rows):
            idx = order[start : start + self.max_rows]
            arrays = self._rows([requests[k] for k in idx])
            placed = [jax.device_put(a, batch_sharding(self.lm.mesh, a.shape)) for a in arrays]
            out[idx] = np.asarray(self._score(self.lm.params, *placed))[: len(idx)]
        return out


_SCORERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def weighted_losses(lm, x_ids: Sequence[int], i: int, prefixes: Sequence[Sequence[int]]) -> np.ndarray:
    """L_i(z) for each prefix z (token ids; an empty list is ε) over the sequence `[BOS?] z x`.
    One Scorer (and its compiled shapes) is kept per LM across calls."""
    x = tuple(int(t) for t in x_ids)
    if lm not in _SCORERS:
        _SCORERS[lm] = Scorer(lm)
    return _SCORERS[lm]([ScoreRequest(tuple(int(t) for t in z), x, i) for z in prefixes])
