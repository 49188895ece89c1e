"""Stages 1 and 2 on the device: API-start probabilities over P(x) at the positions the call-site rule
allows, then calls sampled from the KV cache of that same pass, truncated at each kept position (the
prefix is never recomputed).

The few-shot part of each tool's prompt (everything before "Input: x") is prefilled once per batch,
with that batch's params, and kept as a prefix every document of the batch continues; each batch
prefills only its own tails ("Input: x\nOutput: x"). Calls are then decoded with the rows grouped
by document: each group's rows attend to the head and to their document's tail (up to their own
position), both kept once (the head for all rows, the tails as stage 1 left them), and cache only
the call tokens they write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jtoolformer.annotate.call_sites import allowed_positions, token_starts
from jtoolformer.annotate.candidates_file import Candidate
from jtoolformer.generate.call_tokens import api_start_ids, call_stop_ids
from jtoolformer.generate.sampling import Sampling, sample
from jtoolformer.host_memory import release_freed_memory
from jtoolformer.losses import logsumexp_over_vocab, output_head
from jtoolformer.models import KVCache, forward
from jtoolformer.shapes import batch_multiple, geometric_bucket, left_padded, on_mesh, padded_rows
from jtoolformer.tools.base import Tool
from jtoolformer.tools.calls import ARROWS, CALL_END, ToolCall, parse_partial_call

SENTINEL = "\x00TEXT\x00"
CHECK_EVERY = 2  # decoding steps between checks of how many rows still write
# Batches of fewer rows decode to the end: a SmolLM2 step on XLA:CPU costs 116 ms at 12 rows and 69 ms at 2
# (371 ms at 128), little against the host memory another compiled shape keeps (about 30 MB).
MIN_ROWS_TO_REGROUP = 32


@dataclass(frozen=True)
class Document:
    """One text prepared for one tool: x's token ids, the tail tokens fed after the few-shot head,
    where the copy of x starts inside that tail, the character where each token of x starts (-1 for
    all when x is not the text's encoding) and the positions i the call-site rule allows."""

    x: tuple[int, ...]
    tail: tuple[int, ...]
    copy_start: int
    starts: tuple[int, ...] = ()
    allowed: tuple[int, ...] = ()


@dataclass(frozen=True)
class Position:
    doc: int  # index in the batch
    i: int  # token index in x
    p: float  # Σ over API-start variants of p(variant | P(x), x_<i)
    start_token: int  # the most likely API-start variant there


@flax.struct.dataclass
class Prefixes:
    """What stage 2 continues from stage 1: the few-shot head's keys and values (one row), every
    document's tail (left-padded to `width`)."""

    head: KVCache
    tails: KVCache
    width: int = flax.struct.field(pytree_node=False)


@flax.struct.dataclass
class CallDecodeState:
    """Stage 2's decoding state: rows sample and feed one token per step."""

    step: jax.Array  # int32 []: steps taken
    # the rows' own call tokens; its prefix_rows and prefix_valid say which document's tail (and how far)
    # each row continues. The head's and the tails' keys and values are passed beside it, not donated.
    cache: KVCache
    logits: jax.Array  # [rows, V] float32: each row's next-token distribution
    tokens: jax.Array  # [rows, max_call_tokens] int32: what each row sampled, -1 after it stopped


@dataclass(frozen=True)
class SampledCall:
    doc: int
    i: int
    sample: int
    text: str  # what the model wrote after the API start, up to and including "]" or the arrow


class CandidateSampler:
    """Positions and sampled calls for one tool's prompt on one LM."""

    def __init__(self, lm, prompt: str, *, max_call_tokens: int = 32, sampling: Sampling = Sampling(temperature=1.0),
                 call_head: str = "", max_position_tokens: int = 512, call_sites: str = "word_boundary"):
        """`call_head`: text fed after the API start before sampling begins (e.g. "Calculator("), so every
        sample names the tool; "" samples from the API start on, as the paper does.
        `max_position_tokens`: stage 1 runs at most this many (padded) tokens at a time.
        `call_sites`: the rule of where a call may go (call_sites.py)."""
        head_text, tail_text = prompt.split("Input: " + SENTINEL)
        self.lm, self.max_call_tokens, self.sampling = lm, max_call_tokens, sampling
        self.max_position_tokens, self.call_sites = max_position_tokens, call_sites
        tok = lm.tokenizer
        self.call_head = np.array(tok.encode(call_head) if call_head else [], np.int32)
        self.head = ([tok.bos_id] if tok.bos_id is not None else []) + tok.encode(head_text)
        self.tail_suffix = tail_text  # "\nOutput:"
        self.api_ids = np.array(api_start_ids(tok), np.int32)
        stops = call_stop_ids(tok)
        self.stop_ids = np.array(stops or [-1], np.int32)
        self._prefill_head = jax.jit(self._prefill_head_impl)
        self._tails = jax.jit(self._tails_impl, static_argnames="chunk")
        self._start = jax.jit(self._start_impl, static_argnames="n_steps")
        self._decode = jax.jit(self._decode_impl, donate_argnums=3)
        self._compact = jax.jit(self._compact_impl)
        self.min_rows_to_regroup = MIN_ROWS_TO_REGROUP

    def prepare(self, x: list[int], text: str) -> Document:
        """The tail for text x: "Input: x\\nOutput:" then x again, spelled with a leading space where
        that tokenises x the same way after its first token (else x's own ids); and where in x the
        call-site rule lets a call go."""
        tok = self.lm.tokenizer
        lead = tok.encode("Input: " + text + self.tail_suffix)
        spaced = tok.encode(" " + text)
        copy = spaced if len(spaced) == len(x) and spaced[1:] == x[1:] else x
        starts = token_starts(tok, text, x)
        return Document(tuple(x), tuple(lead + copy), len(lead), tuple(starts),
                        tuple(allowed_positions(self.call_sites, text, starts)))

    def context_needed(self, doc: Document) -> int:
        return len(self.head) + len(doc.tail) + self.max_call_tokens + 1

    # --- stage 1 -------------------------------------------------------------------------------
    def _head_prefix(self, params) -> KVCache:
        """The few-shot head prefilled with `params`: a one-row cache whose keys and values become the
        prefix every document continues."""
        tokens = jnp.asarray([self.head], jnp.int32)
        positions = jnp.arange(len(self.head))[None]
        return self._prefill_head(params, tokens, positions, self.lm.decoder.new_cache(1, len(self.head)))

    def _prefill_head_impl(self, params, tokens, positions, cache: KVCache) -> KVCache:
        return forward(self.lm.config, self.lm.mesh, params, tokens, positions, cache=cache, return_hidden=True)[1]

    def _tails_impl(self, params, head: KVCache, tails, valid, *, chunk: int | None = None):
        """Stage 1 over rows [B, W], `chunk` rows at a time one after another (all at once for None): its
        temporaries (scores over the head, vocabulary tiles) follow the chunk, not B, and each chunk's
        keys and values are written in place into one cache of all B rows."""
        n, width = tails.shape
        if chunk is None or chunk == n:
            return self._tails_rows(params, head, tails, valid)
        layer_axis = 1 if self.lm.config.layers_scanned else 0  # stacked layers come first

        def chunk_rows(c, acc):
            at = c * chunk
            cache, p_api, best = acc
            new, p, b = self._tails_rows(params, head, *(jax.lax.dynamic_slice_in_dim(x, at, chunk) for x in (tails, valid)))

            def put(whole, part, axis=0):
                return jax.lax.dynamic_update_slice_in_dim(whole, part.astype(whole.dtype), at, axis)

            kv = partial(put, axis=layer_axis)
            return (cache.replace(k=jax.tree.map(kv, cache.k, new.k), v=jax.tree.map(kv, cache.v, new.v),
                                  valid=put(cache.valid, new.valid), index=new.index), put(p_api, p), put(best, b))

        init = (KVCache.zeros(self.lm.config, n, width), jnp.zeros((n, width), jnp.float32),
                jnp.zeros((n, width), jnp.int32))
        return jax.lax.fori_loop(0, n // chunk, chunk_rows, init)

    def _tails_rows(self, params, head: KVCache, tails, valid):
        lm = self.lm
        rows = KVCache.zeros(lm.config, tails.shape[0], tails.shape[1])
        cache = rows.replace(prefix_k=head.k, prefix_v=head.v)
        positions = len(self.head) + jnp.maximum(jnp.cumsum(valid, axis=1) - 1, 0)
        hidden, cache = forward(lm.config, lm.mesh, params, tails, positions, cache=cache, token_valid=valid,
                                return_hidden=True)
        w, bias = output_head(params, lm.config)
        api = jnp.einsum("btd,da->bta", hidden, w[:, self.api_ids].astype(hidden.dtype),
                         preferred_element_type=jnp.float32)
        if bias is not None:
            api = api + bias[self.api_ids]
        log_p = jax.nn.logsumexp(api, axis=-1) - logsumexp_over_vocab(hidden, w, bias)
        return cache.replace(prefix_k=None, prefix_v=None), jnp.exp(log_p), jnp.argmax(api, axis=-1)

    def positions(self, docs: list[Document], threshold: float, top_k: int,
                  pad_to_docs: int = 0) -> tuple[list[dict[int, float]], list[Position], Prefixes]:
        """p_i at every allowed position of every document ({i: p_i} per document), the kept positions
        (p_i > threshold, at most the top_k per document, in text order) and the prefixes stage 2
        continues. `pad_to_docs`: rows are padded to at least this many documents, so that a run's
        last, smaller batch compiles nothing new."""
        release_freed_memory()  # what the previous batch freed, before this stage's peak (+225 MB if not)
        mesh = self.lm.mesh
        rows = padded_rows(max(len(docs), pad_to_docs), mesh)
        # every width compiles stage 1 and stage 2's programs again (about 30 MB of host memory each for
        # SmolLM2 on XLA:CPU), so widths take few sizes
        width = geometric_bucket(max(len(d.tail) for d in docs), 32)
        tails, valid = left_padded([d.tail for d in docs], rows, width)
        step = batch_multiple(mesh)
        fit = max(self.max_position_tokens // width, step)
        chunk = max(c for c in range(step, rows + 1, step) if rows % c == 0 and c <= fit)
        head = self._head_prefix(self.lm.params)
        cache, p_api, best = self._tails(self.lm.params, head, *on_mesh(mesh, tails, valid), chunk=chunk)
        p_api, best = np.asarray(p_api), np.asarray(best)
        scores: list[dict[int, float]] = []
        kept: list[Position] = []
        for r, d in enumerate(docs):
            column = width - len(d.tail) + d.copy_start - 1  # predicts the copy's token i at column + i
            scores.append({i: float(p_api[r, column + i]) for i in d.allowed if 1 <= i < len(d.x)})
            top = sorted((s for s in scores[r].items() if s[1] > threshold), key=lambda s: (-s[1], s[0]))[:top_k]
            kept += [Position(r, i, p, int(self.api_ids[best[r, column + i]])) for i, p in sorted(top)]
        release_freed_memory()
        return scores, kept, Prefixes(head, cache, width)

    # --- stage 2 -------------------------------------------------------------------------------
    def _start_impl(self, tails_valid, group_doc, cut, n_steps: int) -> CallDecodeState:
        """Rows [n·J]: J per document group; row r continues the few-shot head (kept once for all rows),
        then document group_doc[r // J] up to tail column cut[r] (exclusive), and holds only its own
        tokens in its cache: the forced ones (API start, call head), then up to n_steps sampled. The
        decoding state before any is fed (the decoding program feeds the forced ones too, so no
        other program of the model is compiled per shape)."""
        rows, groups = cut.shape[0], group_doc.shape[0]
        seen = tails_valid[group_doc][jnp.arange(rows) // (rows // groups)] & (jnp.arange(tails_valid.shape[1])[None] < cut[:, None])
        cache = KVCache.zeros(self.lm.config, rows, 1 + len(self.call_head) + n_steps)
        return CallDecodeState(jnp.int32(0), cache.replace(prefix_rows=group_doc, prefix_valid=seen),
                               jnp.zeros((rows, self.lm.config.vocab_size), jnp.float32), jnp.full((rows, n_steps), -1, jnp.int32))

    def _decode_impl(self, params, head: KVCache, tails: KVCache, state: CallDecodeState, done, keys, position, forced,
                     until):
        """Feeds each row's forced tokens [rows, F] (at position, position + 1, …), then samples and feeds
        one token per row per step, until step `until` (forced steps counted) or every row is done."""
        n_forced, n_steps = forced.shape[1], state.tokens.shape[1]

        def body(carry):
            step, cache, logits, done, out = carry
            sampled_step = step - n_forced
            step_keys = jax.vmap(lambda k: jax.random.fold_in(k, sampled_step))(keys)
            token = jax.vmap(lambda lg, k: sample(lg[None], k, self.sampling)[0])(logits, step_keys)
            token = jnp.where(done, -1, token)
            is_forced = step < n_forced
            out = jnp.where(is_forced, out, jax.lax.dynamic_update_slice(out, token[:, None], (0, sampled_step)))
            done = done | (~is_forced & jnp.isin(token, self.stop_ids))
            token = jnp.where(is_forced, forced[:, jnp.minimum(step, n_forced - 1)], jnp.maximum(token, 0))
            logits, cache = forward(self.lm.config, self.lm.mesh, params, token[:, None], (position + step)[:, None],
                                    cache=cache.with_prefixes(head, tails))
            return step + 1, cache.without_prefixes(), logits[:, -1], done, out

        def more(carry):
            step, _, _, done, _ = carry
            return (step < jnp.minimum(until, n_forced + n_steps)) & ~done.all()

        step, cache, logits, done, out = jax.lax.while_loop(more, body, (state.step, state.cache, state.logits, done,
                                                                         state.tokens))
        return CallDecodeState(step, cache, logits, out), done

    @staticmethod
    def _compact_impl(state: CallDecodeState, rows, groups, keys, position, forced):
        """The decoding state of rows `rows` only, continuing the prefixes of groups `groups`."""
        state = state.replace(cache=state.cache.take_rows(rows, groups), logits=state.logits[rows],
                              tokens=state.tokens[rows])
        return state, keys[rows], position[rows], forced[rows]

    def sample_calls(self, docs: list[Document], kept: list[Position], prefixes: Prefixes, m: int,
                     doc_keys: list[jax.Array], max_rows: int = 192, max_prefix_tokens: int = 16384,
                     calls_per_doc: int = 0) -> list[SampledCall]:
        """m calls at every kept position, decoded at most `max_rows` rows at a time (rows grouped by
        document; a document with more calls than that is split over several groups) and with at most
        `max_prefix_tokens` of prefixes (the few-shot head, kept once, and each group's document tail).
        Once few rows of a batch still write, those go on alone in a smaller batch. Each (document,
        position, sample) has its own random key, so results do not depend on how rows are batched.

        Every batch of a call has one shape, set by the budgets, the prefixes' rows and width, and
        `calls_per_doc` (k·m; 0: the most any document here has): a run that passes k·m and pads stage
        1 to its batch size compiles the decoding programs once per width, not per batch."""
        if not kept:
            return []
        by_doc: dict[int, list[tuple[Position, int]]] = {}
        for pos in kept:
            by_doc.setdefault(pos.doc, []).extend((pos, s) for s in range(m))
        calls = calls_per_doc or max(len(jobs) for jobs in by_doc.values())
        split = -(-calls // max_rows)  # groups a document's calls take, as even as can be
        per_group = min(geometric_bucket(-(-calls // split)), max_rows)
        groups = [(d, jobs[s : s + per_group]) for d, jobs in by_doc.items() for s in range(0, len(jobs), per_group)]
        budget = max(max_prefix_tokens - len(self.head), prefixes.width)  # for the groups' tails

        def padded(n: int) -> int:
            return padded_rows(n, self.lm.mesh)

        fit = max(1, min(max_rows // per_group, budget // prefixes.width, prefixes.tails.valid.shape[0]))
        while fit > 1 and (padded(fit) * per_group > max_rows or padded(fit) * prefixes.width > budget):
            fit -= 1
        out: list[SampledCall] = []
        for s in range(0, len(groups), fit):
            out += self._sample_groups(docs, groups[s : s + fit], padded(fit), per_group, prefixes, doc_keys)
            release_freed_memory()
        return out

    def _sample_groups(self, docs: list[Document], groups: list[tuple[int, list[tuple[Position, int]]]],
                       n_groups: int, per_group: int, prefixes: Prefixes, doc_keys: list[jax.Array]) -> list[SampledCall]:
        """Decodes one batch of row groups, each group continuing its document's prefix, padded to
        n_groups groups of per_group rows."""
        width = prefixes.width
        doc_ids = [d for d, _ in groups] + [groups[0][0]] * (n_groups - len(groups))
        rows: list[tuple[Position, int] | None] = []
        for _, jobs in groups:
            rows += jobs + [None] * (per_group - len(jobs))
        rows += [None] * (n_groups * per_group - len(rows))
        filler = groups[0][1][0]
        jobs = [job or filler for job in rows]  # padding rows start done; their values only need be valid
        cut = np.array([width - len(docs[p.doc].tail) + docs[p.doc].copy_start + p.i for p, _ in jobs], np.int32)
        position = np.array([len(self.head) + docs[p.doc].copy_start + p.i for p, _ in jobs], np.int32)
        forced = np.array([[p.start_token, *self.call_head] for p, _ in jobs], np.int32)
        keys = jnp.stack([jax.random.fold_in(jax.random.fold_in(doc_keys[p.doc], p.i), s) for p, s in jobs])
        done = np.array([job is None for job in rows])
        state = self._start(prefixes.tails.valid, np.array(doc_ids, np.int32), cut, n_steps=self.max_call_tokens)
        tokens = self._decode_rows((prefixes.head, prefixes.tails), state, done, keys, position, forced)
        tok = self.lm.tokenizer
        out = []
        for job, row in zip(rows, tokens):
            if job is not None:
                (p, s), ids = job, [int(t) for t in row if t >= 0]
                out.append(SampledCall(p.doc, p.i, s, tok.decode([p.start_token, *self.call_head.tolist(), *ids])))
        return out

    def _decode_rows(self, context: tuple[KVCache, KVCache], state: CallDecodeState, done: np.ndarray, keys: jax.Array,
                     position: np.ndarray, forced: np.ndarray) -> np.ndarray:
        """Every row's sampled tokens [rows, n_steps] (-1 after its stop), after its forced tokens
        [rows, F] fed from `position` on. Every CHECK_EVERY steps, once
        the rows still writing fit in a batch an eighth of the size (see _regroup), decoding goes on
        with those rows only, if there were at least min_rows_to_regroup."""
        n_steps = self.max_call_tokens
        tokens = np.full((len(done), n_steps), -1, np.int32)
        last_step = forced.shape[1] + n_steps
        origin = np.arange(len(done))  # the original row of each row decoded, -1 for a row that only fills
        step = 0
        while True:
            state, finished = self._decode(self.lm.params, *context, state, done, keys, position, forced,
                                           np.int32(step + CHECK_EVERY))
            step, finished = int(state.step), np.asarray(finished)
            active = np.flatnonzero(~finished)
            if step >= last_step or not len(active):
                break
            done = finished
            regrouped = (self._regroup(active, len(done), state.cache.prefix_groups)
                         if len(done) >= self.min_rows_to_regroup else None)
            if regrouped is not None:
                rows, groups, alive = regrouped
                real = origin >= 0
                tokens[origin[real]] = np.asarray(state.tokens)[real]
                state, keys, position, forced = self._compact(state, rows, groups, keys, position, forced)
                done, origin = ~alive, np.where(alive, origin[rows], -1)
        real = origin >= 0
        tokens[origin[real]] = np.asarray(state.tokens)[real]
        return tokens

    def _regroup(self, active: np.ndarray, n_rows: int, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(rows, groups, alive) of a batch an eighth of n_rows (padded) holding the `active` rows, or None
        when they do not fit. Its shape depends on n_rows and n_groups only, so each batch shape has one
        smaller shape to go on in: the same groups when each then holds two rows or more, else one
        group per row. Each new group continues one old group's prefix (kept once, not copied per
        row); an old group with more active rows than a new one holds is split over several. rows:
        the rows taken; groups: the old group each new group continues; alive: which rows are active
        rows rather than repeats that only fill the batch."""
        size = padded_rows(-(-n_rows // 8), self.lm.mesh)
        groups = n_groups if size >= 2 * n_groups else size
        per_new, per_group = size // groups, n_rows // n_groups
        if groups * per_new >= n_rows:
            return None
        pieces = []  # (old group, its active rows) of each new group
        for g in np.unique(active // per_group):
            mine = active[active // per_group == g]
            pieces += [(g, mine[s : s + per_new]) for s in range(0, len(mine), per_new)]
        if len(pieces) > groups:
            return None
        rows, alive = [], []
        for _, part in pieces:
            rows += [*part, *[part[0]] * (per_new - len(part))]
            alive += [True] * len(part) + [False] * (per_new - len(part))
        fill = groups - len(pieces)  # groups that only fill: repeats of the first active row, in its group
        pieces += [(active[0] // per_group, None)] * fill
        rows += [active[0]] * fill * per_new
        alive += [False] * fill * per_new
        return np.array(rows, np.int32), np.array([g for g, _ in pieces], np.int32), np.array(alive)


def cut_call(text: str) -> str:
    """A sampled call up to its first "]" or arrow."""
    ends = [text.find(m) + len(m) for m in (CALL_END, *ARROWS) if m in text]
    return text[: min(ends)] if ends else text


def read_calls(tool: Tool, sampled: Sequence[SampledCall],
               candidates: Sequence[Candidate]) -> dict[tuple[int, int, ToolCall], list[Candidate]]:
    """Each sample read as a call of `tool` (its candidate notes how: parse, input, outcome); the
    well-formed calls grouped by (document, position, call), so that each distinct call runs once."""
    unique: dict[tuple[int, int, ToolCall], list[Candidate]] = {}
    for s, candidate in zip(sampled, candidates, strict=True):
        call = parse_partial_call(cut_call(s.text), [tool.name])
        if call is None:
            continue
        candidate.input = call.input
        if tool.takes_input and not call.input.strip():
            candidate.parse = candidate.outcome = "empty_input"
            continue
        candidate.parse = "ok"
        twins = unique.setdefault((s.doc, s.i, call), [])
        if twins:
            candidate.outcome = "duplicate"
        twins.append(candidate)
    return unique
