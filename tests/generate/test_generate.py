"""Calls in the middle of batched decoding: results forced in, other rows unaffected, failures contained."""

import threading
import time

import pytest

from jtoolformer.generate.session import OVER_BUDGET, ToolGenerator
from jtoolformer.tools import ToolExecutor
from jtoolformer.tools.base import PromptedTool
from jtoolformer.tools.calculator import Calculator

PROMPT = "Out of 1400 participants, 400 passed, that is [Calculator(400 / 1400) ->"


class Slow(PromptedTool):
    """Answers "done" after `seconds`; notes when it finished."""

    name, prompt_name = "Slow", "calculator"

    def __init__(self, seconds: float):
        self.seconds, self.finished_at = seconds, None

    def __call__(self, input, context):
        time.sleep(self.seconds)
        self.finished_at = time.perf_counter()
        return "done"


class Hang(PromptedTool):
    name, prompt_name = "Hang", "calculator"

    def __call__(self, input, context):
        threading.Event().wait(60)
        return "never"


class Boom(PromptedTool):
    name, prompt_name = "Boom", "calculator"

    def __call__(self, input, context):
        raise RuntimeError("tool failed")


def greedy_text(lm, text, n):
    tok = lm.tokenizer
    return tok.decode(lm.decoder.generate(lm.params, [tok.encode(text)], max_new_tokens=n)[0])


def comparable(generation):
    return generation.text, [(c.tool, c.input, c.result, c.position) for c in generation.calls]


def test_an_open_call_in_the_prompt_gets_its_result_then_decoding_goes_on_greedily(tiny_lm, tokenizer):
    lm = tiny_lm()
    assert tokenizer.encode(PROMPT) + tokenizer.encode(" 0.29]") == tokenizer.encode(PROMPT + " 0.29]")
    [out] = ToolGenerator(lm, {"Calculator": Calculator()})([PROMPT], max_new_tokens=12)
    assert out.text == " 0.29]" + greedy_text(lm, PROMPT + " 0.29]", 12)
    [call] = out.calls
    assert (call.tool, call.input, call.result, call.status) == ("calculator", "400 / 1400", "0.29", "ok")
    assert (PROMPT + out.text)[len(PROMPT) + call.position:].startswith("[Calculator(400 / 1400) -> 0.29]")


@pytest.mark.parametrize("chunk", [1, 3])
def test_a_marker_the_model_writes_is_answered_at_once(tiny_lm, tokenizer, chunk):
    [arrow] = tokenizer.encode(" ->")
    lm = tiny_lm({arrow: 30.0})  # " ->" wins every step
    prompt = "The share is [Calculator(400 / 1400)"
    gen = ToolGenerator(lm, {"Calculator": Calculator()}, chunk=chunk)
    [out] = gen([prompt], max_new_tokens=6)
    assert out.text == " -> 0.29]" + " ->" * 5  # outside a call "->" is only text
    assert [(c.input, c.result) for c in out.calls] == [("400 / 1400", "0.29")]
    assert out.text == greedy_text(lm, prompt, 1) + " 0.29]" + greedy_text(lm, prompt + " -> 0.29]", 5)
    [last] = gen([prompt], max_new_tokens=1)  # the marker is the last token it may choose; results are extra
    assert last.text == " -> 0.29]" and len(last.calls) == 1


def test_each_row_of_a_batch_gets_what_it_gets_alone(tiny_lm):
    lm = tiny_lm()
    slow = Slow(0.3)
    gen = ToolGenerator(lm, {"Calculator": Calculator(), "Slow": slow}, chunk=4)
    prompts = [PROMPT, "The weather today", "Wait for it: [Slow(x) ->",
               "A longer prompt with more words, then [Calculator(3 * 7) ->", "Short"]
    together = gen(prompts, max_new_tokens=10)
    alone = [gen([p], max_new_tokens=10)[0] for p in prompts]
    assert [comparable(g) for g in together] == [comparable(g) for g in alone]
    assert [len(g.calls) for g in together] == [1, 0, 1, 1, 0]
    assert together[2].text.startswith(" done]") and together[3].text.startswith(" 21]")


def test_rows_without_calls_do_not_wait_for_a_slow_tool(tiny_lm):
    slow = Slow(2.0)
    gen = ToolGenerator(tiny_lm(), {"Slow": slow}, chunk=2)
    gen(["Wait for it: [Slow(x) ->", "The weather today"], max_new_tokens=16)  # compiles
    last_piece = {}

    def note(row, text, kind):
        last_piece[row] = time.perf_counter()

    out = gen(["Wait for it: [Slow(y) ->", "The weather today"], max_new_tokens=16, on_piece=note)
    assert last_piece[1] < slow.finished_at < last_piece[0]
    assert out[0].calls[0].result == "done" and out[0].calls[0].seconds >= 2.0


def test_a_tool_that_hangs_or_raises_gives_an_empty_result_after_the_time_limit(tiny_lm):
    lm = tiny_lm()
    tools = {"Hang": Hang(), "Boom": Boom()}
    gen = ToolGenerator(lm, tools, ToolExecutor(tools, timeout_s=0.5))
    prompts = ["It hangs: [Hang(x) ->", "It raises: [Boom(y) ->", "The weather today"]
    started = time.perf_counter()
    hang, boom, plain = gen(prompts, max_new_tokens=8)
    assert time.perf_counter() - started < 10
    assert [(c.result, c.status) for c in hang.calls] == [("", "timeout")]
    assert [(c.result, c.status) for c in boom.calls] == [("", "error")]
    assert hang.text.startswith("]") and boom.text.startswith("]")
    assert plain.text == greedy_text(lm, prompts[2], 8)


def test_a_tool_over_its_budget_is_not_run(tiny_lm):
    lm = tiny_lm()
    gen = ToolGenerator(lm, {"Calculator": Calculator()}, tool_budget={"calculator": 0})
    [out] = gen([PROMPT], max_new_tokens=4)
    assert [(c.result, c.status) for c in out.calls] == [("", OVER_BUDGET)]
    assert out.text == "]" + greedy_text(lm, PROMPT + "]", 4)


def test_streamed_pieces_spell_the_text_and_mark_the_result(tiny_lm):
    gen = ToolGenerator(tiny_lm(), {"Calculator": Calculator()}, chunk=3)
    pieces = []
    [out] = gen([PROMPT], max_new_tokens=8, on_piece=lambda row, text, kind: pieces.append((text, kind)))
    assert "".join(text for text, _ in pieces) == out.text
    assert "".join(text for text, kind in pieces if kind == "result") == " 0.29]"
