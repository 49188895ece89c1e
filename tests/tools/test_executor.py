import argparse
import json
import re
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tools_fuzz import hostile_text

from jtoolformer.tools.base import PromptedTool, ToolContext
from jtoolformer.tools.calculator import Calculator
from jtoolformer.tools.calendar_tool import Calendar
from jtoolformer.tools.calls import ToolCall
from jtoolformer.tools.cli import timeout_seconds
from jtoolformer.tools.executor import NO_LIMIT, CallStatus, ToolExecutor, ToolRequest
from jtoolformer.tools.registry import make_tools

LIMIT_S = 0.3


class Hangs(PromptedTool):
    name = "Hang"

    def __call__(self, input, context):
        threading.Event().wait()


class Raises(PromptedTool):
    name = "Raise"

    def __call__(self, input, context):
        raise RuntimeError("tool crashed")


class Counts(PromptedTool):
    name = "Count"

    def __init__(self):
        self.inputs = []

    def __call__(self, input, context):
        self.inputs.append(input)
        return f"seen {input}"


class Returns(PromptedTool):
    name = "Return"

    def __init__(self, value):
        self.value = value

    def __call__(self, input, context):
        return self.value


class Batches(PromptedTool):
    name = "Batch"

    def __init__(self, answers=None):
        self.batches, self.answers = [], answers

    def __call__(self, input, context):
        raise AssertionError("a batched tool is called through call_batch")

    def call_batch(self, inputs, contexts):
        self.batches.append(list(inputs))
        return self.answers if self.answers is not None else [s.upper() for s in inputs]


def request(tool, text="", context=None):
    return ToolRequest(ToolCall(tool, text), context or ToolContext())


def test_hung_and_crashing_tools_give_empty_results_while_the_rest_completes():
    executor = ToolExecutor({"Hang": Hangs(), "Raise": Raises(), "Calculator": Calculator()}, timeout_s=LIMIT_S)
    started = time.monotonic()
    results = executor.run([request("Hang", "1"), request("Calculator", "400 / 1400"), request("Raise", "x"),
                            request("Hang", "2"), request("Calculator", "27 + 4 * 2")])
    elapsed = time.monotonic() - started
    assert [(r.text, r.status) for r in results] == [
        ("", CallStatus.TIMEOUT), ("0.29", CallStatus.OK), ("", CallStatus.ERROR),
        ("", CallStatus.TIMEOUT), ("35", CallStatus.OK)]
    assert LIMIT_S <= elapsed < LIMIT_S + 1.0
    stats = executor.stats.to_dict()
    assert stats["tools"]["Hang"]["failures"] == {"timeout": 2}
    assert stats["tools"]["Raise"]["failures"] == {"error": 1}
    assert stats["abandoned_threads"] == 2


def test_hung_calls_free_their_worker_slot():
    executor = ToolExecutor({"Hang": Hangs(), "Calculator": Calculator()}, timeout_s=LIMIT_S, max_workers=2)
    requests = [request("Hang", str(i)) for i in range(4)] + [request("Calculator", f"{i} + 1") for i in range(4)]
    started = time.monotonic()
    results = executor.run(requests)
    assert time.monotonic() - started < 2 * LIMIT_S + 1.0  # two rounds of hung pairs, not a stall
    assert [r.text for r in results] == [""] * 4 + ["1", "2", "3", "4"]


def test_identical_calls_run_once_and_then_come_from_the_cache():
    counter = Counts()
    executor = ToolExecutor({"Count": counter})
    first = executor.run([request("Count", "a"), request("Count", "a"), request("Count", "b"), request("Count", "a")])
    assert [r.text for r in first] == ["seen a", "seen a", "seen b", "seen a"]
    assert sorted(counter.inputs) == ["a", "b"]
    second = executor.run([request("Count", "a"), request("Count", "c")])
    assert [(r.text, r.status) for r in second] == [("seen a", CallStatus.CACHED), ("seen c", CallStatus.OK)]
    assert sorted(counter.inputs) == ["a", "b", "c"]
    stats = executor.stats.tools["Count"]
    assert (stats.requests, stats.cache_hits, stats.executions) == (6, 1, 3)


def test_the_cache_is_bounded_and_keeps_recent_calls():
    counter = Counts()
    executor = ToolExecutor({"Count": counter}, cache_size=2)
    for text in ["a", "b", "a", "c", "a", "b"]:
        executor.run([request("Count", text)])
    assert counter.inputs == ["a", "b", "c", "b"]


def test_context_dependent_results_are_cached_per_context():
    import datetime as dt

    executor = ToolExecutor({"Calendar": Calendar()})
    monday, tuesday = ToolContext(date=dt.date(2023, 1, 30)), ToolContext(date=dt.date(2023, 1, 31))
    results = executor.run([request("Calendar", "", monday), request("Calendar", "", tuesday)])
    assert [r.text for r in results] == ["Today is Monday, January 30, 2023.", "Today is Tuesday, January 31, 2023."]
    assert executor.run([request("Calendar", "", tuesday)])[0].status == CallStatus.CACHED


def test_timeouts_are_not_cached():
    class SlowOnce(PromptedTool):
        name = "Slow"
        calls = 0

        def __call__(self, input, context):
            self.calls += 1
            if self.calls == 1:
                time.sleep(5 * LIMIT_S)
            return "done"

    executor = ToolExecutor({"Slow": SlowOnce()}, timeout_s=LIMIT_S)
    assert executor.run([request("Slow")])[0].status == CallStatus.TIMEOUT
    [again] = executor.run([request("Slow")])
    assert (again.text, again.status) == ("done", CallStatus.OK)


@pytest.mark.parametrize("tool, text, status", [
    (Returns("x" * 2000), "", CallStatus.OVERSIZED_RESULT),
    (Returns(42), "", CallStatus.BAD_RESULT),
    (Returns(None), "", CallStatus.BAD_RESULT),
    (Returns("ok"), "y" * 20_000, CallStatus.OVERSIZED_INPUT),
])
def test_bad_results_and_inputs_are_counted_failures(tool, text, status):
    executor = ToolExecutor({"Return": tool})
    [result] = executor.run([request("Return", text)])
    assert (result.text, result.status) == ("", status)
    assert executor.stats.tools["Return"].failures == {status.value: 1}


def test_unknown_tools_are_answered_without_running_anything():
    executor = ToolExecutor({"Calculator": Calculator()})
    [result] = executor.run([request("Weather", "Paris")])
    assert (result.text, result.status) == ("", CallStatus.UNKNOWN_TOOL)
    assert executor.stats.to_dict()["tools"]["Weather"]["failures"] == {"unknown_tool": 1}


def test_results_are_cleaned_to_fit_inside_a_call():
    [result] = ToolExecutor({"Return": Returns("see [1]\nand\x00 more")}).run([request("Return")])
    assert result.text == "see (1) and more"


def test_batched_tools_get_their_unique_calls_together():
    batcher = Batches()
    executor = ToolExecutor({"Batch": batcher, "Calculator": Calculator()}, max_batch=2)
    results = executor.run([request("Batch", "a"), request("Calculator", "1 + 1"), request("Batch", "b"),
                            request("Batch", "a"), request("Batch", "c")])
    assert [r.text for r in results] == ["A", "2", "B", "A", "C"]
    assert batcher.batches == [["a", "b"], ["c"]]


def test_a_batch_of_the_wrong_length_fails_as_a_whole():
    results = ToolExecutor({"Batch": Batches(answers=["only one"])}).run([request("Batch", "a"), request("Batch", "b")])
    assert [(r.text, r.status) for r in results] == [("", CallStatus.BAD_RESULT)] * 2


def test_stats_are_json():
    executor = ToolExecutor({"Calculator": Calculator()})
    executor.run([request("Calculator", "1 + 1"), request("Calculator", "1 / 0")])
    stats = json.loads(executor.stats.to_json())["tools"]["Calculator"]
    assert stats["requests"] == 2 and stats["executions"] == 2 and stats["empty_results"] == 1
    assert 0 < stats["latency_s"]["p50"] <= stats["latency_s"]["max"] < 1


def test_a_process_with_hung_tool_threads_still_exits():
    script = textwrap.dedent("""
        import threading
        from jtoolformer.tools.base import PromptedTool, ToolContext
        from jtoolformer.tools.calls import ToolCall
        from jtoolformer.tools.executor import ToolExecutor, ToolRequest

        class Hangs(PromptedTool):
            name = "Hang"
            def __call__(self, input, context):
                threading.Event().wait()

        executor = ToolExecutor({"Hang": Hangs()}, timeout_s=0.2)
        print(executor.run([ToolRequest(ToolCall("Hang", "x"))])[0].status)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "timeout"


@settings(max_examples=300, deadline=None)
@given(calls=st.lists(st.tuples(st.sampled_from(["Calculator", "Calendar", "WikiSearch", "Nope"]), hostile_text),
                      max_size=8))
def test_fuzz_executor_with_real_tools(calls):
    executor = ToolExecutor(make_tools("calculator,calendar,wikisearch"), timeout_s=5.0)
    results = executor.run([request(tool, text) for tool, text in calls])
    assert len(results) == len(calls)
    for result in results:
        assert isinstance(result.text, str) and len(result.text) <= executor.max_result_chars
        assert "[" not in result.text and "]" not in result.text and "\n" not in result.text


def test_a_batch_tool_returning_none_is_a_bad_result_not_a_timeout():
    class NoneBatch(Batches):
        def call_batch(self, inputs, contexts):
            return None

    [result] = ToolExecutor({"Batch": NoneBatch()}).run([request("Batch", "a")])
    assert (result.text, result.status) == ("", CallStatus.BAD_RESULT)


class Sleeps(PromptedTool):
    name = "Sleep"

    def __call__(self, input, context):
        time.sleep(float(input))
        return "awake"


@pytest.mark.parametrize("settings, field", [
    ({"timeout_s": float("inf")}, "timeout_s"), ({"timeout_s": float("nan")}, "timeout_s"),
    ({"timeout_s": -1.0}, "timeout_s"), ({"timeout_s": float("-inf")}, "timeout_s"),
    ({"timeout_s": "10"}, "timeout_s"), ({"timeout_s": 10**400}, "timeout_s"), ({"timeout_s": True}, "timeout_s"), ({"timeout_s": None}, "timeout_s"),
    ({"timeouts": {"Sleep": float("inf")}}, "timeouts['Sleep']"), ({"timeouts": {"Sleep": -2}}, "timeouts['Sleep']"),
    ({"max_workers": 0}, "max_workers"), ({"max_batch": 0}, "max_batch"), ({"cache_size": -1}, "cache_size"),
    ({"max_input_chars": -1}, "max_input_chars"), ({"max_result_chars": 1.5}, "max_result_chars"),
])
def test_settings_out_of_range_are_refused_naming_the_setting(settings, field):
    with pytest.raises(ValueError, match=re.escape(field)):
        ToolExecutor({"Sleep": Sleeps()}, **settings)


@pytest.mark.parametrize("timeout_s", [1e10, 1e300, 2**70])
def test_any_finite_limit_runs_calls_without_raising(timeout_s):
    """Limits beyond what a lock can wait for at once (threading.TIMEOUT_MAX, ~9.2e9 s) once raised
    OverflowError from inside `run`."""
    executor = ToolExecutor({"Sleep": Sleeps(), "Calculator": Calculator()}, timeout_s=timeout_s)
    results = executor.run([request("Sleep", "0.05"), request("Calculator", "2 + 2")])
    assert [(r.text, r.status) for r in results] == [("awake", CallStatus.OK), ("4", CallStatus.OK)]


def test_no_limit_waits_for_slow_calls_without_spinning():
    executor = ToolExecutor({"Sleep": Sleeps(), "Hang": Hangs()}, timeout_s=NO_LIMIT, timeouts={"Hang": LIMIT_S})
    cpu, started = time.process_time(), time.monotonic()
    results = executor.run([request("Sleep", str(3 * LIMIT_S)), request("Hang")])
    assert [(r.text, r.status) for r in results] == [("awake", CallStatus.OK), ("", CallStatus.TIMEOUT)]
    assert time.monotonic() - started >= 3 * LIMIT_S
    assert time.process_time() - cpu < LIMIT_S  # blocked on the queue, not polling it


@pytest.mark.parametrize("text, seconds", [("10", 10.0), ("0.5", 0.5), ("0", NO_LIMIT), ("1e10", 1e10)])
def test_the_command_line_reads_limits(text, seconds):
    assert timeout_seconds(text) == seconds


@pytest.mark.parametrize("text", ["inf", "-inf", "nan", "-1", "1e999", "ten", ""])
def test_the_command_line_refuses_bad_limits_with_a_usage_error(text, capsys):
    parser = argparse.ArgumentParser(prog="generate")
    parser.add_argument("--timeout", type=timeout_seconds)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["--timeout", text])
    assert exit_.value.code == 2
    assert "--timeout" in capsys.readouterr().err
