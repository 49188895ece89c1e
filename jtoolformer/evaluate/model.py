"""The harness's Generator and TextScorer for a jtoolformer LM: tool-interleaved greedy decoding and
text negative log-likelihoods."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jtoolformer.cli.args import dtype_overrides, mesh_from_text
from jtoolformer.generate.session import Generation, ToolGenerator
from jtoolformer.lm import LM, load_model
from jtoolformer.losses import output_head, token_logprobs
from jtoolformer.models import forward
from jtoolformer.shapes import batch_multiple, bucket, on_mesh
from jtoolformer.tools.base import Tool, ToolContext
from jtoolformer.tools.registry import TOOL_KEYS, ToolBackends, describe_backends


class LMGenerator:
    """Greedy decoding with the paper's top-k trigger and at most one call per prompt."""

    def __init__(self, lm: LM, tools: Mapping[str, Tool] | None = None):
        """`tools`: by API name; default: all five, on their default backends."""
        tools = tools if tools is not None else ToolBackends().make_tools(TOOL_KEYS, generator=lm)
        self.generator = ToolGenerator(lm, tools, max_calls=1)

    def __call__(self, prompts: list[str], *, max_new_tokens: int, tools: Sequence[str],
                 trigger_top_k: int | None, calendar_dates: Sequence[datetime.date | None]) -> list[Generation]:
        contexts = [ToolContext(date=d or datetime.date.today()) for d in calendar_dates]
        return self.generator(prompts, max_new_tokens=max_new_tokens, tools=tuple(tools),
                              trigger_top_k=trigger_top_k, contexts=contexts)


class LMScorer:
    """(Σ NLL in nats, tokens scored) per text; texts longer than the context are scored in windows
    that each start fresh. The first token is scored after BOS when the tokenizer has one."""

    def __init__(self, lm: LM, window: int | None = None):
        self.lm = lm
        self.window = min(window or lm.config.max_positions, lm.config.max_positions)
        self._nll = jax.jit(self._nll_impl)

    def _nll_impl(self, params, ids, valid):
        positions = jnp.broadcast_to(jnp.arange(ids.shape[1]), ids.shape)
        hidden, _ = forward(self.lm.config, self.lm.mesh, params, ids, positions, segment_ids=valid.astype(jnp.int32),
                            return_hidden=True)
        w, b = output_head(params, self.lm.config)
        logp = token_logprobs(hidden[:, :-1], w, b, ids[:, 1:])
        return -(logp * valid[:, 1:]).sum(axis=1), valid[:, 1:].sum(axis=1)

    def __call__(self, texts: list[str]) -> list[tuple[float, int]]:
        tok = self.lm.tokenizer
        out = []
        for text in texts:
            ids = ([tok.bos_id] if tok.bos_id is not None else []) + tok.encode(text)
            total, count = 0.0, 0
            for start in range(0, max(len(ids) - 1, 1), self.window - 1):
                piece = ids[start : start + self.window]
                arr = np.zeros((batch_multiple(self.lm.mesh), bucket(len(piece))), np.int32)
                valid = np.zeros_like(arr, bool)
                arr[0, : len(piece)], valid[0, : len(piece)] = piece, True
                nll, n = self._nll(self.lm.params, *on_mesh(self.lm.mesh, arr, valid))
                total, count = total + float(nll[0]), count + int(n[0])
            out.append((total, count))
        return out


def make_generator_and_scorer(model: str, mesh: str | None = None, backends: ToolBackends = ToolBackends(),
                              dtype: str | None = None) -> tuple[LMGenerator, LMScorer]:
    """`mesh`: "data,fsdp,tensor" sizes over this host's devices; None: one device. Prints what backs
    the tools."""
    lm = load_model(model, mesh=None if mesh is None else mesh_from_text(mesh), **dtype_overrides(dtype))
    tools = backends.make_tools(TOOL_KEYS, generator=lm)
    for line in describe_backends(tools):
        print(line)
    return LMGenerator(lm, tools), LMScorer(lm)
