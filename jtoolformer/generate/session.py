"""Generation with tools (docs/method.md §4): batched decoding in which any row may call a tool.

The device runs chunks of steps (`tool_steps`). Between chunks the host reads each call a row has
written up to its result marker ("->" or "→"), submits it to the `ToolExecutor` on a background thread
and forces " result]" into the row once the result arrives. Until then the row is paused; the other
rows keep decoding, and the host only blocks when every unfinished row is waiting for a tool.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from jtoolformer.checkpoints.tokenizer import Tokenizer
from jtoolformer.generate.decoder import NO_TOKEN
from jtoolformer.generate.sampling import Sampling
from jtoolformer.generate.tool_steps import RowState, ToolDecoder
from jtoolformer.tools.base import Tool, ToolContext
from jtoolformer.tools.calls import ARROWS, CALL_END, CALL_START, ToolCall, clean_result, parse_partial_call, \
    result_suffix
from jtoolformer.tools.executor import ToolExecutor, ToolRequest, ToolResult

PieceKind = Literal["text", "call", "result"]
OVER_BUDGET = "over_budget"
SLOTS_PER_CALL = 32  # cache slots reserved per allowed call, for its text and result (the cache grows if short)


@dataclass(frozen=True)
class CallRecord:
    tool: str  # the tool's key in lower case: "calculator"
    input: str
    result: str  # "" when the tool failed, timed out or was over its budget
    position: int  # index of the call's "[" in Generation.text; negative: in the prompt (a call it left open)
    seconds: float  # wall time of the executor batch the call ran in
    status: str  # a CallStatus value, or OVER_BUDGET


@dataclass(frozen=True)
class Generation:
    text: str  # the continuation: calls and their results included, EOS excluded
    calls: list[CallRecord]


OnPiece = Callable[[int, str, PieceKind], None]


def generate_with_tools(
    decoder: ToolDecoder,
    executor: ToolExecutor,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    tools: Collection[str] | None = None,
    trigger_top_k: int | None = 10,
    max_calls: int = 1,
    tool_budget: Mapping[str, int] | None = None,
    sampling: Sampling = Sampling(),
    contexts: Sequence[ToolContext] | None = None,
    seed: int = 0,
    chunk: int = 16,
    on_piece: OnPiece | None = None,
) -> list[Generation]:
    """Continues each prompt by up to `max_new_tokens` tokens the model chooses; tool results come on top
    (a marker written as the last of them still gets its result).

    tools: names (any case) of the executor's tools the model may call; None: all of them; empty: the
      paper's "disabled" mode (API-start tokens get probability 0, nothing is executed).
    trigger_top_k: a call starts wherever an API-start token is among the k most likely tokens (the
      paper: 10); None: only where decoding picks it anyway.
    max_calls: calls each row may open (the paper: 1); then its API-start tokens get probability 0.
      A call the prompt leaves open counts as one. Calls may use earlier results (they are in context).
    tool_budget: per row, at most this many executions of a tool (by lower-case key); later calls to
      it get an empty result, status OVER_BUDGET.
    contexts: each prompt's document context (Calendar reads its date).
    chunk: decode steps per device call; a row that writes a result marker waits at most this long.
    on_piece(row, text, kind): streams each row's text as it is decided; kind "call" for a call the
      model writes, "result" for what is forced after its marker.
    """
    if max_new_tokens < 1 or chunk < 1 or max_calls < 0:
        raise ValueError(f"need max_new_tokens ≥ 1, chunk ≥ 1, max_calls ≥ 0; got {max_new_tokens}, {chunk}, "
                         f"{max_calls}")
    if trigger_top_k is not None and not 1 <= trigger_top_k <= decoder.lm.config.vocab_size:
        raise ValueError(f"trigger_top_k {trigger_top_k} must be None or between 1 and the vocabulary size")
    if contexts is not None and len(contexts) != len(prompts):
        raise ValueError(f"{len(contexts)} contexts for {len(prompts)} prompts")
    session = _Session(decoder, executor, _enabled_tools(executor.tools, tools), max_calls, dict(tool_budget or {}),
                       on_piece)
    return session.run(prompts, list(contexts or [ToolContext()] * len(prompts)), max_new_tokens, sampling,
                       trigger_top_k, seed, chunk)


def _enabled_tools(available: Mapping[str, Tool], requested: Collection[str] | None) -> list[str]:
    by_key = {name.lower(): name for name in available}
    if requested is None:
        return list(available)
    unknown = [name for name in requested if name.lower() not in by_key]
    if unknown:
        raise ValueError(f"unknown tool(s) {unknown}: the executor has {', '.join(available)}")
    return [by_key[name.lower()] for name in requested]


class ToolGenerator:
    """An LM with tools; called like the evaluation needs it: prompts in, `Generation`s out."""

    def __init__(self, lm, tools: Mapping[str, Tool], executor: ToolExecutor | None = None, *,
                 trigger_top_k: int | None = 10, max_calls: int = 1, tool_budget: Mapping[str, int] | None = None,
                 sampling: Sampling = Sampling(), timeout_s: float = 10.0, chunk: int = 16):
        """tools: by API name, as `make_tools` gives them. The executor defaults to one over `tools`
        with `timeout_s` per call."""
        self.decoder = ToolDecoder(lm)
        self.executor = executor if executor is not None else ToolExecutor(tools, timeout_s=timeout_s)
        self.trigger_top_k, self.max_calls, self.tool_budget = trigger_top_k, max_calls, tool_budget
        self.sampling, self.chunk = sampling, chunk

    def __call__(self, prompts: Sequence[str], *, max_new_tokens: int, tools: Sequence[str] | None = None,
                 trigger_top_k: int | None | Literal["default"] = "default",
                 contexts: Sequence[ToolContext] | None = None, seed: int = 0,
                 on_piece: OnPiece | None = None) -> list[Generation]:
        """tools: keys such as "calculator" (None: all; () disables tools); trigger_top_k: None decodes
        plainly, "default" takes the generator's."""
        return generate_with_tools(
            self.decoder, self.executor, prompts, max_new_tokens=max_new_tokens, tools=tools,
            trigger_top_k=self.trigger_top_k if trigger_top_k == "default" else trigger_top_k,
            max_calls=self.max_calls, tool_budget=self.tool_budget, sampling=self.sampling, contexts=contexts,
            seed=seed, chunk=self.chunk, on_piece=on_piece)


@dataclass
class _Call:
    call: ToolCall
    start: int | None  # index of its API-start token among the row's ids; None: opened in the prompt
    result: str = ""
    seconds: float = 0.0
    status: str = ""


@dataclass
class _Row:
    prompt: str
    context: ToolContext
    ids: list[int] = field(default_factory=list)  # everything after the prompt, forced tokens included
    forced: deque[int] = field(default_factory=deque)
    call_start: int | None = None  # while a call is open: index in `ids` where its text starts
    call_prefix: str = ""  # the open call's text before ids[call_start:] (the prompt's part of it)
    waiting: tuple[Future, int] | None = None  # the executor batch the open call is in, and its index there
    calls: list[_Call] = field(default_factory=list)
    executed: Counter[str] = field(default_factory=Counter)
    stream: list[tuple[int, PieceKind]] = field(default_factory=list)  # ids decided but not streamed yet

    def call_text(self, tokenizer: Tokenizer) -> str:
        assert self.call_start is not None
        return self.call_prefix + tokenizer.decode(self.ids[self.call_start:])


class _Session:
    """The host side of one batch: rows, the executor thread and the loop around device chunks."""

    def __init__(self, decoder: ToolDecoder, executor: ToolExecutor, tool_names: list[str], max_calls: int,
                 tool_budget: dict[str, int], on_piece: OnPiece | None):
        self.decoder, self.executor, self.tool_names = decoder, executor, tool_names
        self.tokenizer: Tokenizer = decoder.lm.tokenizer
        self.max_calls = max_calls if tool_names else 0
        self.tool_budget = {key.lower(): n for key, n in tool_budget.items()}
        self.on_piece = on_piece
        self.rows: list[_Row] = []
        self.requests: list[tuple[int, ToolRequest]] = []  # calls read since the last submission

    def run(self, prompts: Sequence[str], contexts: list[ToolContext], max_new_tokens: int, sampling: Sampling,
            trigger_top_k: int | None, seed: int, chunk: int) -> list[Generation]:
        tok, lm = self.tokenizer, self.decoder.lm
        self.rows = [_Row(p, c) for p, c in zip(prompts, contexts)]
        state, n = lm.decoder.start(lm.params, [tok.encode_prompt(p) or [tok.bos_id or 0] for p in prompts],
                                    max_new_tokens, seed, tok.pad_id, extra_slots=self.max_calls * SLOTS_PER_CALL)
        batch = state.done.shape[0]
        rows = RowState(in_call=np.zeros(batch, bool), calls_left=np.full(batch, self.max_calls, np.int32),
                        tokens_left=np.full(batch, max_new_tokens, np.int32), paused=np.zeros(batch, bool))
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tool-calls") as pool:
            for r, row in enumerate(self.rows):
                self._open_prompt_call(r, row, rows)
            self._submit(pool)
            done = np.array(state.done)  # a copy: the next chunk donates state
            while True:
                self._collect_results()
                unfinished = [r for r in range(n) if not done[r]]
                if not unfinished:
                    break
                if all(self.rows[r].waiting for r in unfinished):
                    wait({self.rows[r].waiting[0] for r in unfinished}, return_when=FIRST_COMPLETED)
                    continue
                forced = np.full((batch, chunk), NO_TOKEN, np.int32)
                for r in unfinished:
                    taken = [self.rows[r].forced.popleft() for _ in range(min(chunk, len(self.rows[r].forced)))]
                    forced[r, : len(taken)] = taken
                rows = rows.replace(paused=np.array([r < n and self.rows[r].waiting is not None
                                                     for r in range(batch)]))
                state = lm.decoder.make_room(state, chunk)
                state, rows, tokens, in_call = self.decoder.chunk(state, rows, forced, sampling=sampling,
                                                                  trigger_top_k=trigger_top_k)
                done = np.array(state.done)
                for r in unfinished:
                    self._take(r, tokens[r], in_call[r], int(np.sum(forced[r] != NO_TOKEN)))
                    if rows.paused[r] and not done[r] and self.rows[r].waiting is None:
                        self._read_call(r)
                self._submit(pool)
            self._flush_streams()
        return [self._generation(row) for row in self.rows]

    def _open_prompt_call(self, r: int, row: _Row, rows: RowState) -> None:
        """A prompt that ends inside a call ("… [Calculator(400 / 1400) ->") continues that call."""
        at = row.prompt.rfind(CALL_START)
        if not self.tool_names or at < 0 or CALL_END in row.prompt[at:]:
            return
        row.call_start, row.call_prefix = 0, row.prompt[at:]
        rows.in_call[r] = True
        rows.calls_left[r] = max(0, self.max_calls - 1)
        if any(arrow in row.call_prefix for arrow in ARROWS):
            self._read_call(r)

    def _take(self, r: int, tokens: np.ndarray, in_call: np.ndarray, n_forced: int) -> None:
        """Appends what row r took in a chunk, noting where the calls it opened start."""
        row = self.rows[r]
        was_in_call = row.call_start is not None
        for step, token in enumerate(tokens):
            if token == NO_TOKEN:
                continue
            if in_call[step] and not was_in_call:
                row.call_start, row.call_prefix = len(row.ids), ""
            elif not in_call[step]:
                row.call_start = None
            forced = step < n_forced
            row.ids.append(int(token))
            if self.on_piece and (forced or token != self.tokenizer.eos_id):
                row.stream.append((int(token), "result" if forced else "call" if in_call[step] or was_in_call
                                   else "text"))
            was_in_call = bool(in_call[step])
        self._stream(r)

    def _read_call(self, r: int) -> None:
        """Row r stopped inside a call: queue the call if it is written up to its marker, or close it with
        an empty result if it is malformed or over budget. (Without a marker the row just goes on.)"""
        row = self.rows[r]
        text = row.call_text(self.tokenizer)
        if not any(arrow in text for arrow in ARROWS):
            return
        call = parse_partial_call(text, self.tool_names)
        start = row.call_start if row.call_prefix == "" else None
        if call is None:
            self._force(row, "")
        elif self.tool_budget.get(call.tool.lower(), math.inf) <= row.executed[call.tool.lower()]:
            row.calls.append(_Call(call, start, status=OVER_BUDGET))
            self._force(row, "")
        else:
            row.executed[call.tool.lower()] += 1
            row.calls.append(_Call(call, start))
            self.requests.append((r, ToolRequest(call, row.context)))

    def _force(self, row: _Row, result: str) -> None:
        row.forced.extend(self.tokenizer.encode(result_suffix(clean_result(result))))

    def _submit(self, pool: ThreadPoolExecutor) -> None:
        if not self.requests:
            return
        future = pool.submit(_timed_run, self.executor, [request for _, request in self.requests])
        for i, (r, _) in enumerate(self.requests):
            self.rows[r].waiting = (future, i)
        self.requests = []

    def _collect_results(self) -> None:
        for row in self.rows:
            if row.waiting is None or not row.waiting[0].done():
                continue
            (future, i), row.waiting = row.waiting, None
            results, seconds = future.result()
            call = row.calls[-1]
            call.result, call.seconds, call.status = results[i].text, seconds, results[i].status.value
            self._force(row, results[i].text)

    def _stream(self, r: int) -> None:
        """Passes on row r's pending ids as text, holding back a character still cut in pieces."""
        row = self.rows[r]
        while row.stream:
            kind = row.stream[0][1]
            run = [token for token, _ in itertools.takewhile(lambda item: item[1] == kind, row.stream)]
            text = self.tokenizer.decode(run)
            if text.endswith("\ufffd"):
                return
            del row.stream[: len(run)]
            self.on_piece(r, text, kind)

    def _flush_streams(self) -> None:
        for r, row in enumerate(self.rows):
            if row.stream:
                self.on_piece(r, self.tokenizer.decode([token for token, _ in row.stream]), row.stream[0][1])
                row.stream.clear()

    def _generation(self, row: _Row) -> Generation:
        tok = self.tokenizer
        ids = row.ids[:-1] if row.ids and row.ids[-1] == tok.eos_id else row.ids
        records = []
        for call in row.calls:
            if call.start is None:
                position = row.prompt.rfind(CALL_START) - len(row.prompt)
            else:
                position = len(tok.decode(ids[: call.start])) + tok.decode([ids[call.start]]).index(CALL_START)
            records.append(CallRecord(call.call.tool.lower(), call.call.input, call.result, position, call.seconds,
                                      call.status))
        return Generation(tok.decode(ids), records)


def _timed_run(executor: ToolExecutor, requests: list[ToolRequest]) -> tuple[list[ToolResult], float]:
    started = time.perf_counter()
    results = executor.run(requests)
    return results, time.perf_counter() - started
