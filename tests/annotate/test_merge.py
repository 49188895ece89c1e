"""Merging kept calls into x* and dropping calls that copy from the future (§7)."""

from jtoolformer.annotate.merge import KeptCall, choose_calls, insert_calls, leaks

TEXT = "Out of 1400 participants, 400 passed the test, that is 29% of them."


def call(tool, inp, result, pos, gain=1.0):
    return KeptCall(tool, inp, result, 0, pos, loss_plus=1.0, loss_minus=1.0 + gain)


def test_insert_call_before_a_word_like_the_paper():
    pos = TEXT.index(" 29%")
    out = insert_calls(TEXT, [call("Calculator", "400 / 1400", "0.29", pos)])
    assert out == "Out of 1400 participants, 400 passed the test, that is [Calculator(400 / 1400) -> 0.29] 29% of them."


def test_several_calls_keep_the_text_around_them():
    a, b = TEXT.index(" 400"), TEXT.index(" 29%")
    out = insert_calls(TEXT, [call("Calculator", "400 / 1400", "0.29", b), call("QA", "How many?", "400", a)])
    assert out.replace(" [QA(How many?) -> 400]", "").replace(" [Calculator(400 / 1400) -> 0.29]", "") == TEXT


def test_leaks_are_inputs_using_words_only_found_later():
    pos = TEXT.index(" 400")
    assert leaks("1400 - 400", TEXT, pos)  # 400 appears only after the call
    assert not leaks("1400 / 2", TEXT, pos)
    pos29 = TEXT.index(" 29%")
    assert not leaks("400 / 1400", TEXT, pos29)
    assert leaks("participants", "Some were there. The participants cheered.", 5)


def test_choose_calls_keeps_best_per_position_and_drops_leaks():
    pos = TEXT.index(" 29%")
    weak, strong = call("Calculator", "400 / 1400", "0.29", pos, 0.6), call("QA", "What share passed?", "29%", pos, 2.0)
    leak = call("Calculator", "400 / 1400 * 29", "8.29", TEXT.index(" 400"), 5.0)
    kept, leaked = choose_calls([weak, strong, leak], TEXT)
    assert kept == [strong] and leaked == [leak]


def test_positions_split_only_by_whitespace_take_one_call():
    text = "They drew 24 + 16 = 40 pictures and 12 more."
    before_space, after_space = text.index(" 40"), text.index("40")
    first = call("Calculator", "24 + 16", "40", before_space, 0.3)
    second = call("Calculator", "24 + 16", "40", after_space, 0.5)
    elsewhere = call("Calculator", "40 - 28", "12", text.index(" 12"), 0.1)
    kept, _ = choose_calls([first, second, elsewhere], text)
    assert kept == [second, elsewhere]
    assert insert_calls(text, kept).count("[Calculator(24 + 16)") == 1

