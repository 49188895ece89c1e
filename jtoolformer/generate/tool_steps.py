"""The jitted side of generation with tools (docs/method.md §4): chunks of decode steps with call rules.

A chunk is a `lax.scan` of steps over the whole batch, with static shapes. In each step a row either
takes the token the host forced on it (part of a tool's result), or chooses one under the call rules
(API-start tokens masked once the row has no calls left; the paper's trigger: an API start among the
top k tokens is written instead of the sampled token), or takes nothing while paused. A row pauses
itself after writing a token that may complete a result marker inside an open call, so the host can
read the call and run the tool; a paused row's step slot stays invalid, so it later resumes exactly
where it stopped.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jtoolformer.checkpoints.tokenizer import Tokenizer
from jtoolformer.generate.call_tokens import api_start_ids
from jtoolformer.generate.decoder import NO_TOKEN, DecodeState, Decoder
from jtoolformer.generate.sampling import Sampling, sample
from jtoolformer.sharding import batch_sharding
from jtoolformer.tools.calls import ARROWS, CALL_END

_PARTIAL_CHARACTER = "\ufffd"  # what a token holding only part of a UTF-8 character decodes to


@flax.struct.dataclass
class TokenClasses:
    start_ids: jax.Array  # [S] int32: every API-start variant ("[", " [", ...)
    opens: jax.Array  # [V] bool: an API-start variant
    closes: jax.Array  # [V] bool: contains "]"
    marks: jax.Array  # [V] bool: may complete a result marker: holds an arrow's last character, or a piece of one
    stops: jax.Array  # [V] bool: ends the row (EOS)


def token_classes(tokenizer: Tokenizer, vocab_size: int) -> TokenClasses:
    """The classes of every id below `vocab_size` (a model's vocabulary may be larger than its tokenizer's)."""
    texts = [tokenizer.decode([i]) for i in range(min(vocab_size, tokenizer.vocab_size))]
    texts += [""] * (vocab_size - len(texts))
    marks = {arrow[-1] for arrow in ARROWS} | {_PARTIAL_CHARACTER}
    starts = api_start_ids(tokenizer)
    opens = np.zeros(vocab_size, bool)
    opens[starts] = True
    stops = np.zeros(vocab_size, bool)
    if tokenizer.eos_id is not None:
        stops[tokenizer.eos_id] = True
    return TokenClasses(
        start_ids=jnp.asarray(starts, jnp.int32),
        opens=jnp.asarray(opens),
        closes=jnp.asarray([CALL_END in t for t in texts]),
        marks=jnp.asarray([any(m in t for m in marks) for t in texts]),
        stops=jnp.asarray(stops),
    )


@flax.struct.dataclass
class RowState:
    in_call: jax.Array  # [B] bool: the row's last API start has not been closed by "]" yet
    calls_left: jax.Array  # [B] int32: API starts the row may still write (at 0 they are masked)
    tokens_left: jax.Array  # [B] int32: tokens the row may still choose (forced ones are free)
    paused: jax.Array  # [B] bool: takes no token


class ToolDecoder:
    """Jitted chunks of tool-aware decode steps for one LM (which must have a tokenizer)."""

    def __init__(self, lm):
        if lm.tokenizer is None:
            raise ValueError("generation with tools reads calls as text: load a model with a tokenizer")
        self.lm = lm
        self.classes = token_classes(lm.tokenizer, lm.config.vocab_size)

    def chunk(self, state: DecodeState, rows: RowState, forced: np.ndarray, *, sampling: Sampling,
              trigger_top_k: int | None) -> tuple[DecodeState, RowState, np.ndarray, np.ndarray]:
        """Runs forced.shape[1] steps. forced [B, C]: the token row b must take at step c, or NO_TOKEN.
        `rows` and the rows returned hold host (numpy) arrays.

        Returns the new state and rows, the token each row took at each step [B, C] (NO_TOKEN where it
        took none: paused or done) and whether its call was open after that token [B, C]."""
        mesh = self.lm.mesh
        rows, forced = jax.device_put((rows, np.asarray(forced, np.int32)), batch_sharding(mesh, forced.shape[:1]))
        state, rows, tokens, in_call = tool_chunk_program(self.lm.params, state, rows, forced, self.classes,
                                                          decoder=self.lm.decoder, sampling=sampling,
                                                          trigger_top_k=trigger_top_k)
        return state, jax.device_get(rows), np.asarray(tokens), np.asarray(in_call)

    @staticmethod
    def _choose(logits: jax.Array, rows: RowState, key: jax.Array, classes: TokenClasses, sampling: Sampling,
                trigger_top_k: int | None) -> jax.Array:
        logits = jnp.where(classes.opens[None] & (rows.calls_left[:, None] <= 0), -jnp.inf, logits)
        token = sample(logits, key, sampling)
        if trigger_top_k is None:
            return token
        start_logits = logits[:, classes.start_ids]
        best = jnp.max(start_logits, axis=1)
        above = jnp.sum(logits > best[:, None], axis=1)  # a count, not lax.top_k: far cheaper over a vocabulary
        trigger = (rows.calls_left > 0) & ~rows.in_call & (above < trigger_top_k)
        return jnp.where(trigger, classes.start_ids[jnp.argmax(start_logits, axis=1)], token)

    @staticmethod
    def _chunk_impl(params, state: DecodeState, rows: RowState, forced: jax.Array, classes: TokenClasses, *,
                    decoder: Decoder, sampling: Sampling, trigger_top_k: int | None):
        def body(carry: tuple[DecodeState, RowState], forced_now: jax.Array):
            state, rows = carry
            key, sub = jax.random.split(state.key)
            is_forced = forced_now != NO_TOKEN
            spent = ~is_forced & (rows.tokens_left <= 0)  # e.g. after the result of a call its last token opened
            fed = ~state.done & ~rows.paused & ~spent
            chosen = fed & ~is_forced
            token = jnp.where(is_forced, forced_now, ToolDecoder._choose(state.logits, rows, sub, classes, sampling,
                                                                          trigger_top_k))
            in_call = jnp.where(fed, (rows.in_call | classes.opens[token]) & ~classes.closes[token], rows.in_call)
            tokens_left = rows.tokens_left - chosen
            stop = chosen & classes.stops[token]
            paused = rows.paused | (chosen & in_call & classes.marks[token] & ~stop)
            done = state.done | (~rows.paused & spent) | stop | (chosen & (tokens_left <= 0) & ~paused)
            rows = RowState(
                in_call=in_call,
                calls_left=rows.calls_left - (chosen & classes.opens[token] & ~rows.in_call),
                tokens_left=tokens_left,
                paused=paused,
            )
            state = decoder.advance(params, state.replace(key=key), jnp.where(fed, token, 0), fed)
            return (state.replace(done=done), rows), (jnp.where(fed, token, NO_TOKEN), in_call)

        (state, rows), (tokens, in_call) = jax.lax.scan(body, (state, rows), forced.T)
        return state, rows, tokens.T, in_call.T


# One program for every LM of a config and mesh (LMs of both share their Decoder, see shared_decoder).
tool_chunk_program = jax.jit(ToolDecoder._chunk_impl, static_argnames=("decoder", "sampling", "trigger_top_k"),
                             donate_argnames="state")
