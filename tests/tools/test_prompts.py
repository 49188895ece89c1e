import re

import pytest

from jtoolformer.tools.base import DEFAULT_SAMPLING, RARE_CALL_SAMPLING, load_prompt
from jtoolformer.tools.calculator import Calculator
from jtoolformer.tools.calendar_tool import Calendar
from jtoolformer.tools.calls import find_calls
from jtoolformer.tools.mt import MT
from jtoolformer.tools.qa import QA
from jtoolformer.tools.wikisearch import WikiSearch

TOOL_CLASSES = [Calculator, Calendar, WikiSearch, QA, MT]
EXAMPLE = re.compile(r"^Input: (.*)\nOutput: (.*)$", re.MULTILINE)


def examples(tool_class):
    return [(i, o) for i, o in EXAMPLE.findall(load_prompt(tool_class.prompt_name)) if i != "{text}"]


@pytest.mark.parametrize("tool_class", TOOL_CLASSES)
def test_prompt_has_the_papers_shape(tool_class):
    prompt = load_prompt(tool_class.prompt_name)
    assert prompt.startswith("Your task is")
    assert f'"[{tool_class.name}(' in prompt.split("\n", 1)[0]  # the task sentence shows the call syntax
    assert 3 <= len(examples(tool_class)) <= 5
    assert prompt.endswith("Input: {text}\nOutput:")


@pytest.mark.parametrize("tool_class", TOOL_CLASSES)
def test_example_outputs_are_their_inputs_with_calls_inserted(tool_class):
    for text, annotated in examples(tool_class):
        calls = find_calls(annotated)
        assert calls and all(c.call.tool == tool_class.name and c.result is None for c in calls)
        assert all(c.start > 0 for c in calls)  # position 0 is never a call position
        quoted = [annotated[c.start:c.end].startswith(f'[{tool_class.name}("') for c in calls]
        assert all(q == tool_class.quoted_input for q in quoted)
        stripped = annotated
        for call in reversed(calls):
            stripped = stripped[:call.start] + stripped[call.end:].removeprefix(" ")
        assert stripped == text


def test_mt_examples_translate_text_written_before_the_call():
    for _, annotated in examples(MT):
        for call in find_calls(annotated):
            assert call.call.input in annotated[:call.start]


def test_render_prompt_appends_the_text_verbatim():
    text = "A text with {text} and {braces} in it."
    rendered = Calculator().render_prompt(text)
    assert rendered == load_prompt("calculator").replace("Input: {text}", f"Input: {text}")
    assert rendered.endswith(f"Input: {text}\nOutput:")


def test_sampling_settings_follow_the_paper():
    assert (RARE_CALL_SAMPLING.position_threshold, RARE_CALL_SAMPLING.positions_per_doc,
            RARE_CALL_SAMPLING.calls_per_position, RARE_CALL_SAMPLING.filter_threshold) == (0.0, 20, 10, 0.5)
    assert (DEFAULT_SAMPLING.position_threshold, DEFAULT_SAMPLING.positions_per_doc,
            DEFAULT_SAMPLING.calls_per_position, DEFAULT_SAMPLING.filter_threshold) == (0.05, 5, 5, 1.0)
    assert {cls.name: cls.sampling for cls in TOOL_CLASSES} == {
        "Calculator": RARE_CALL_SAMPLING, "MT": RARE_CALL_SAMPLING, "Calendar": DEFAULT_SAMPLING,
        "WikiSearch": DEFAULT_SAMPLING, "QA": DEFAULT_SAMPLING}
