import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tools_fuzz import FUZZ_SETTINGS, TIME_LIMIT_S, hostile_text

from jtoolformer.tools.calls import ToolCall, clean_result, find_calls, format_call, parse_partial_call, result_suffix

TOOLS = ["Calculator", "Calendar", "WikiSearch", "QA", "MT"]


def test_paper_spelling_of_calls():
    call = ToolCall("Calculator", "400 / 1400")
    assert format_call(call) == "[Calculator(400 / 1400)]"
    assert format_call(call, "0.29") == "[Calculator(400 / 1400) -> 0.29]"
    assert format_call(call, "") == "[Calculator(400 / 1400) ->]"
    assert format_call(ToolCall("QA", "Who wrote Emma?"), "Jane Austen", quoted=True) == \
        '[QA("Who wrote Emma?") -> Jane Austen]'


def test_decoding_appends_result_suffix_after_the_arrow():
    call = ToolCall("Calculator", "400 / 1400")
    written_by_model = "[Calculator(400 / 1400) ->"
    assert written_by_model + result_suffix("0.29") == format_call(call, "0.29")
    assert written_by_model + result_suffix("") == format_call(call, "")


@pytest.mark.parametrize("call, result", [
    (ToolCall("Calculator", "1 ] 2"), None),
    (ToolCall("Calculator", "[1"), None),
    (ToolCall("Calculator", "a -> b"), None),
    (ToolCall("Calculator", "a → b"), None),
    (ToolCall("Calc ulator", "1"), None),
    (ToolCall("", "1"), None),
    (ToolCall("QA", "q"), "see [1]"),
])
def test_format_refuses_what_would_not_parse_back(call, result):
    with pytest.raises(ValueError):
        format_call(call, result)


def test_find_calls_in_annotated_text():
    text = "The price is [Calculator(400 / 1400) -> 0.29] 0.29 and [QA(\"Who?\")] done."
    found = find_calls(text, TOOLS)
    assert [(f.call, f.result) for f in found] == [
        (ToolCall("Calculator", "400 / 1400"), "0.29"), (ToolCall("QA", "Who?"), None)]
    assert text[found[0].start:found[0].end] == "[Calculator(400 / 1400) -> 0.29]"
    assert text[found[1].start:found[1].end] == '[QA("Who?")]'
    # What follows the arrow, the part decoding appends after the model writes it.
    assert text[found[0].result_start:found[0].end] == " 0.29]" and found[1].result_start is None


@pytest.mark.parametrize("written, appended", [
    ("[ calculator ( 2 + 3 ) → 5 ]", " 5 ]"), ("[Calendar()->Today.]", "Today.]"), ("[Calendar() ->]", "]")])
def test_result_start_follows_either_arrow(written, appended):
    text = f"x {written} y"
    [found] = find_calls(text, TOOLS)
    assert text[found.result_start:found.end] == appended


@pytest.mark.parametrize("written, call, result", [
    ("[ calculator ( (2 + 3) * 4 ) → 20 ]", ToolCall("Calculator", "(2 + 3) * 4"), "20"),
    ("[Calculator(f(g(x)))]", ToolCall("Calculator", "f(g(x))"), None),
    ("[QA(\"Who is the publisher of The Legend of Zelda?\") → Nintendo]",
     ToolCall("QA", "Who is the publisher of The Legend of Zelda?"), "Nintendo"),
    ("[WikiSearch('Brown Act')]", ToolCall("WikiSearch", "Brown Act"), None),
    ("[MT(“tortuga”) -> turtle]", ToolCall("MT", "tortuga"), "turtle"),
    ("[Calendar()->Today is Monday, January 30, 2023.]",
     ToolCall("Calendar", ""), "Today is Monday, January 30, 2023."),
    ("[Calendar() ->]", ToolCall("Calendar", ""), ""),
    ("[MT(\"it's\")]", ToolCall("MT", "it's"), None),
    ("[QA(\"a\" and \"b\")]", ToolCall("QA", 'a" and "b'), None),
])
def test_parsing_tolerates_spacing_arrows_quotes_case_and_nesting(written, call, result):
    [found] = find_calls(f"x {written} y", TOOLS)
    assert (found.call, found.result) == (call, result)


@pytest.mark.parametrize("text", [
    "[Calculator(1 + 2]", "[Calculator 1 + 2]", "[(1 + 2)]", "[]", "[Calculator(1) x]",
    "[Calculator(1 -> 2)]", "[1Calc(2)]", "[Calculator)(]", "[Weather(Paris)]", "[Calculator(1) -> [2]]",
])
def test_malformed_or_unknown_calls_are_not_found(text):
    assert find_calls(text, TOOLS) == []


def test_any_identifier_is_a_tool_without_a_tool_list():
    [found] = find_calls("see [Weather(Paris) -> sunny]")
    assert found.call == ToolCall("Weather", "Paris") and found.result == "sunny"


@pytest.mark.parametrize("written, expected", [
    ("Calculator(400 / 1400) ", ToolCall("Calculator", "400 / 1400")),
    ("Calculator(400 / 1400) ->", ToolCall("Calculator", "400 / 1400")),
    (" [Calculator(400 / 1400) →", ToolCall("Calculator", "400 / 1400")),
    ('QA("Who wrote Emma?")]', ToolCall("QA", "Who wrote Emma?")),
    ("calendar()", ToolCall("Calendar", "")),
    ("Calculator(400 / 1400", None),
    ("Calculator", None),
    ("Weather(Paris) ->", None),
    ("Calculator(1) [x", None),
    ("", None),
])
def test_partial_call_as_the_model_writes_it(written, expected):
    assert parse_partial_call(written, TOOLS) == expected


def test_clean_result_keeps_the_call_parseable():
    cleaned = clean_result("The [citation] says\nline two\x00 \ud800 end  ")
    assert cleaned == "The (citation) says line two end"
    [found] = find_calls(format_call(ToolCall("WikiSearch", "x"), cleaned))
    assert found.result == cleaned


_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,15}", fullmatch=True)
_inputs = st.text(max_size=40).filter(lambda s: not any(x in s for x in ("[", "]", "->", "→")))
_results = st.none() | st.text(max_size=40).filter(lambda s: "[" not in s and "]" not in s)
_outside = st.text(max_size=20).filter(lambda s: "[" not in s and "]" not in s)


@given(name=_names, text=_inputs, quoted=st.booleans(), result=_results, before=_outside, after=_outside)
def test_format_then_find_round_trips(name, text, quoted, result, before, after):
    written = format_call(ToolCall(name, text), result, quoted=quoted)
    document = before + written + after
    [found] = find_calls(document)
    assert found.call == ToolCall(name, text.strip())
    assert found.result == (None if result is None else result.strip())
    assert document[found.start:found.end] == written
    assert parse_partial_call(written, [name]) == found.call


@given(text=hostile_text)
def test_found_calls_format_back_to_the_same_calls(text):
    for found in find_calls(text):
        again = find_calls(format_call(found.call, found.result))
        assert [(f.call, f.result) for f in again] == [(found.call, found.result)]


@FUZZ_SETTINGS
@given(text=hostile_text)
def test_fuzz_call_parsers_never_raise(text):
    started = time.perf_counter()
    found = find_calls(text, TOOLS)
    partial = parse_partial_call(text, TOOLS)
    assert time.perf_counter() - started < TIME_LIMIT_S
    for call in found:
        assert text[call.start] == "[" and text[call.end - 1] == "]" and call.call.tool in TOOLS
    assert partial is None or partial.tool in TOOLS
