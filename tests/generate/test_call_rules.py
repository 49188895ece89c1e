"""The paper's decoding rules: the top-k trigger, the per-input call limit and the disabled mode."""

import numpy as np
import pytest

from jtoolformer.generate.call_tokens import api_start_ids
from jtoolformer.generate.session import ToolGenerator
from jtoolformer.tools.calculator import Calculator

PROMPT = "The weather today"


@pytest.fixture(scope="module")
def ids(tokenizer):
    [space_start] = tokenizer.encode(" [")
    [arrow] = tokenizer.encode(" ->")
    return space_start, arrow, api_start_ids(tokenizer)


def generator(lm, **kwargs):
    return ToolGenerator(lm, {"Calculator": Calculator()}, chunk=4, **kwargs)


def test_a_call_starts_where_api_start_is_among_the_top_k(tiny_lm, tokenizer, ids):
    space_start, _, starts = ids
    logits = tiny_lm().logits(np.asarray([tokenizer.encode(PROMPT)]))[0, -1]
    others = np.sort(np.delete(logits, starts))[::-1]
    bias = {s: -100.0 for s in starts} | {space_start: (others[1] + others[2]) / 2 - logits[space_start]}
    lm = tiny_lm(bias)  # " [" is now the third most likely first token
    gen = generator(lm)
    first = {k: gen([PROMPT], max_new_tokens=1, trigger_top_k=k)[0].text for k in (None, 2, 3)}
    assert first[3] == " ["
    assert first[None] == first[2] == tokenizer.decode([int(np.argmax(logits))]) != " ["


@pytest.mark.parametrize("max_calls", [1, 3])
def test_each_input_opens_at_most_max_calls_calls(tiny_lm, ids, max_calls):
    space_start, arrow, _ = ids
    # " ->" wins every step, " [" comes second: outside a call the trigger opens one, inside it " ->" asks
    # for a result (this call is malformed, so it is closed with "]").
    lm = tiny_lm({arrow: 30.0, space_start: 20.0})
    texts = [g.text for g in generator(lm, max_calls=max_calls, trigger_top_k=2)([PROMPT] * 2, max_new_tokens=20)]
    assert texts == [(" [ ->]" * max_calls) + " ->" * (20 - 2 * max_calls)] * 2


def test_disabled_tools_give_api_start_probability_zero(tiny_lm, tokenizer, ids):
    space_start, arrow, starts = ids
    lm = tiny_lm({space_start: 40.0, arrow: 30.0})  # " [" wins every step
    gen = generator(lm)
    enabled = gen([PROMPT], max_new_tokens=6, trigger_top_k=None)[0].text
    assert enabled == " [ ->]" + " ->" * 4
    disabled = gen([PROMPT, PROMPT + " [Calculator(1 + 1) ->"], max_new_tokens=6, tools=())
    assert [g.text for g in disabled] == [" ->" * 6] * 2 and not any(g.calls for g in disabled)
    assert not set(starts) & set(tokenizer.encode(disabled[0].text))
