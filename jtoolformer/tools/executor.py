"""Runs batches of tool calls on the host: threads, per-call time limits, a cache, counted failures.

Each execution runs in its own daemon thread, at most `max_workers` at once. A call that overruns
its time limit gets "" and its thread is abandoned, never joined (a daemon thread cannot keep the
process alive either). Tools with `call_batch` get all their calls of a batch in one execution.
A time limit is a finite number of seconds > 0, or NO_LIMIT (0): wait for the tool however long.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import numbers
import queue
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

from jtoolformer.tools.base import BatchTool, Tool, ToolContext
from jtoolformer.tools.calls import ToolCall, clean_result

logger = logging.getLogger(__name__)
_TIMED_OUT = object()
NO_LIMIT = 0.0


def check_timeout(seconds: object, name: str = "timeout_s") -> float:
    """`seconds` as a float when it is a valid time limit (finite and > 0, or NO_LIMIT), else ValueError."""
    if isinstance(seconds, numbers.Real) and not isinstance(seconds, bool):
        value = float(seconds) if abs(seconds) < 2**1000 else math.inf  # float(10**400) would raise
        if math.isfinite(value) and value >= 0:
            return value
    raise ValueError(f"{name} must be a finite number of seconds > 0, or {NO_LIMIT:g} for no limit; "
                     f"got {seconds!r}")


def _check_count(value: object, name: str, least: int) -> int:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= least:
        return int(value)
    raise ValueError(f"{name} must be an integer >= {least}; got {value!r}")


class CallStatus(enum.StrEnum):
    OK = "ok"
    CACHED = "cached"
    UNKNOWN_TOOL = "unknown_tool"
    OVERSIZED_INPUT = "oversized_input"
    OVERSIZED_RESULT = "oversized_result"
    BAD_RESULT = "bad_result"  # not a string, or a batch of the wrong length
    ERROR = "error"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class ToolRequest:
    call: ToolCall
    context: ToolContext = ToolContext()


@dataclass(frozen=True)
class ToolResult:
    text: str  # "" whenever status is a failure
    status: CallStatus


@dataclass
class ToolStats:
    """Counts of one tool's calls; latencies are per execution (a batched execution counts once)."""

    requests: int = 0
    cache_hits: int = 0
    executions: int = 0
    empty_results: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))

    def to_dict(self) -> dict[str, object]:
        ordered = sorted(self.latencies_s)

        def quantile(q: float) -> float | None:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None

        return {
            "requests": self.requests, "cache_hits": self.cache_hits, "executions": self.executions,
            "empty_results": self.empty_results, "failures": dict(self.failures),
            "latency_s": {"mean": sum(ordered) / len(ordered) if ordered else None, "p50": quantile(0.5),
                          "p95": quantile(0.95), "max": ordered[-1] if ordered else None},
        }


@dataclass
class ExecutorStats:
    tools: dict[str, ToolStats] = field(default_factory=dict)
    abandoned_threads: int = 0  # executions that overran their limit, over the executor's life

    def tool(self, name: str) -> ToolStats:
        return self.tools.setdefault(name, ToolStats())

    def to_dict(self) -> dict[str, object]:
        return {"tools": {name: stats.to_dict() for name, stats in sorted(self.tools.items())},
                "abandoned_threads": self.abandoned_threads}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


@dataclass
class _Job:
    """One execution: a single call, or every call of a batched tool."""

    tool: str
    keys: list[Hashable]
    run: Callable[[], object]
    timeout_s: float
    started: float = 0.0

    @property
    def deadline(self) -> float:
        return self.started + self.timeout_s if self.timeout_s != NO_LIMIT else math.inf


class ToolExecutor:
    def __init__(self, tools: Mapping[str, Tool], *, timeout_s: float = 10.0,
                 timeouts: Mapping[str, float] | None = None, max_workers: int = 8,
                 max_input_chars: int = 10_000, max_result_chars: int = 1_000, cache_size: int = 100_000,
                 max_batch: int = 64):
        """`timeouts` overrides `timeout_s` per tool name (LM-backed tools need more). Settings out
        of range raise ValueError here, so that `run` never raises."""
        self.tools = dict(tools)
        self.timeout_s = check_timeout(timeout_s)
        self.timeouts = {name: check_timeout(t, f"timeouts[{name!r}]") for name, t in (timeouts or {}).items()}
        self.max_workers = _check_count(max_workers, "max_workers", 1)
        self.max_batch = _check_count(max_batch, "max_batch", 1)
        self.max_input_chars = _check_count(max_input_chars, "max_input_chars", 0)
        self.max_result_chars = _check_count(max_result_chars, "max_result_chars", 0)
        self.cache_size = _check_count(cache_size, "cache_size", 0)
        self.stats = ExecutorStats()
        self._cache: OrderedDict[Hashable, str] = OrderedDict()
        self._lock = threading.Lock()

    def run(self, requests: Sequence[ToolRequest]) -> list[ToolResult]:
        """A result for every request, in order; never raises for anything a tool or its input does.
        Batches from several threads take turns."""
        with self._lock:
            results: list[ToolResult | None] = [None] * len(requests)
            waiting: dict[Hashable, list[int]] = {}
            for i, request in enumerate(requests):
                results[i] = self._answer_early(request)
                if results[i] is None:
                    waiting.setdefault(self._key(request), []).append(i)
            for job, outcome in self._execute(self._jobs(requests, waiting)):
                for key, result in zip(job.keys, self._results(job, outcome), strict=True):
                    for i in waiting[key]:
                        results[i] = result
            return cast(list[ToolResult], results)

    def _answer_early(self, request: ToolRequest) -> ToolResult | None:
        """The result of a request that needs no execution: unknown tool, input too long, cached."""
        name = request.call.tool
        stats = self.stats.tool(name)
        stats.requests += 1
        if name not in self.tools:
            return self._failure(name, CallStatus.UNKNOWN_TOOL, request.call.input)
        if len(request.call.input) > self.max_input_chars:
            return self._failure(name, CallStatus.OVERSIZED_INPUT, request.call.input)
        key = self._key(request)
        if key in self._cache:
            self._cache.move_to_end(key)
            stats.cache_hits += 1
            return ToolResult(self._cache[key], CallStatus.CACHED)
        return None

    def _key(self, request: ToolRequest) -> Hashable:
        tool = self.tools[request.call.tool]
        return request.call.tool, request.call.input, request.context if tool.context_dependent else None

    def _jobs(self, requests: Sequence[ToolRequest], waiting: dict[Hashable, list[int]]) -> list[_Job]:
        by_tool: dict[str, list[Hashable]] = {}
        for key, indices in waiting.items():
            by_tool.setdefault(requests[indices[0]].call.tool, []).append(key)
        jobs = []
        for name, keys in by_tool.items():
            tool = self.tools[name]
            timeout = self.timeouts.get(name, self.timeout_s)
            calls = {key: requests[waiting[key][0]] for key in keys}
            if isinstance(tool, BatchTool):
                for start in range(0, len(keys), self.max_batch):
                    chunk = keys[start: start + self.max_batch]
                    inputs = [calls[k].call.input for k in chunk]
                    contexts = [calls[k].context for k in chunk]
                    jobs.append(_Job(name, chunk, lambda t=tool, i=inputs, c=contexts: t.call_batch(i, c), timeout))
            else:
                for key in keys:
                    request = calls[key]
                    jobs.append(_Job(name, [key], lambda t=tool, r=request: [t(r.call.input, r.context)], timeout))
        return jobs

    def _execute(self, jobs: list[_Job]) -> Iterator[tuple[_Job, object]]:
        """Yields (job, outcome) as executions finish or time out; outcome is the returned value,
        the exception raised, or _TIMED_OUT."""
        finished: queue.SimpleQueue[tuple[int, object]] = queue.SimpleQueue()
        pending = deque(enumerate(jobs))
        running: dict[int, _Job] = {}
        while pending or running:
            while pending and len(running) < self.max_workers:
                job_id, job = pending.popleft()
                job.started = time.monotonic()
                running[job_id] = job
                threading.Thread(target=_work, args=(job_id, job.run, finished), daemon=True,
                                 name=f"tool-{job.tool}").start()
            deadline = min(job.deadline for job in running.values())
            wait = None if deadline == math.inf else min(max(0.0, deadline - time.monotonic()), threading.TIMEOUT_MAX)
            try:
                job_id, outcome = finished.get(timeout=wait)
            except queue.Empty:
                now = time.monotonic()
                for job_id, job in list(running.items()):
                    if now >= job.deadline:
                        del running[job_id]
                        self.stats.abandoned_threads += 1
                        yield job, _TIMED_OUT
                continue
            job = running.pop(job_id, None)
            if job is not None:  # else it had already timed out
                yield job, outcome

    def _results(self, job: _Job, outcome: object) -> list[ToolResult]:
        stats = self.stats.tool(job.tool)
        stats.executions += 1
        stats.latencies_s.append(time.monotonic() - job.started)
        if outcome is _TIMED_OUT:
            return [self._failure(job.tool, CallStatus.TIMEOUT, f"{len(job.keys)} call(s)")] * len(job.keys)
        if isinstance(outcome, BaseException):
            failure = self._failure(job.tool, CallStatus.ERROR, f"{type(outcome).__name__}: {outcome}")
            return [failure] * len(job.keys)
        if not isinstance(outcome, list) or len(outcome) != len(job.keys):
            return [self._failure(job.tool, CallStatus.BAD_RESULT, repr(outcome)[:80])] * len(job.keys)
        return [self._checked(job.tool, key, text) for key, text in zip(job.keys, outcome, strict=True)]

    def _checked(self, name: str, key: Hashable, text: object) -> ToolResult:
        if not isinstance(text, str):
            return self._failure(name, CallStatus.BAD_RESULT, f"a {type(text).__name__}, not a str")
        text = clean_result(text)
        if len(text) > self.max_result_chars:
            return self._failure(name, CallStatus.OVERSIZED_RESULT, f"{len(text)} characters")
        if not text:
            self.stats.tool(name).empty_results += 1
        self._cache[key] = text
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return ToolResult(text, CallStatus.OK)

    def _failure(self, name: str, status: CallStatus, detail: str) -> ToolResult:
        self.stats.tool(name).failures[status.value] += 1
        level = logging.WARNING if status in (CallStatus.ERROR, CallStatus.TIMEOUT) else logging.DEBUG
        logger.log(level, "tool %s: %s (%s)", name, status.value, detail[:200])
        return ToolResult("", status)


def _work(job_id: int, run: Callable[[], object], finished: queue.SimpleQueue) -> None:
    try:
        outcome = run()
    except BaseException as error:  # noqa: BLE001  # a tool's failure, whatever it is, is reported, not raised
        outcome = error
    finished.put((job_id, outcome))
