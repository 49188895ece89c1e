"""Where stage 1 may put a call, checked on SmolLM2's tokenizer, which writes numbers digit by digit."""

import pytest

from jtoolformer.annotate.call_sites import allowed_positions, char_position, token_starts
from jtoolformer.checkpoints.gguf import default_gguf_path, gguf_tokenizer
from jtoolformer.checkpoints.tokenizer import Tokenizer

TEXT = "She paid 15 x 3 = 45 dollars (about 12.5%), that is 1,200 cents; the rest is $30 (= 90 / 3)."


@pytest.fixture(scope="module")
def tok():
    hf, ids = gguf_tokenizer(default_gguf_path())
    return Tokenizer(hf, ids["bos_id"], ids["eos_id"], ids["pad_id"], add_bos=False)


def sites(tok, rule: str, text: str = TEXT) -> list[int]:
    x = tok.encode(text)
    starts = token_starts(tok, text, x)
    return [starts[i] for i in allowed_positions(rule, text, starts)]


def test_digits_are_single_tokens_so_the_rule_matters(tok):
    pieces = [tok.decode([t]) for t in tok.encode(" 1200")]
    assert pieces == [" ", "1", "2", "0", "0"]


def test_word_boundaries_allow_every_place_people_compute_and_never_inside_a_number(tok):
    allowed = set(sites(tok, "word_boundary"))
    for before in ("45 dollars", "12.5%", "1,200 cents", "$30", "90 / 3", " 45", " (about"):
        at = TEXT.index(before)  # after "=", "is", "(", before a percentage; or before the space before it
        assert at in allowed or (TEXT[at - 1] == " " and at - 1 in allowed), before
    for inside in ("5 x 3", "2.5%", ".5%", ",200", "00 cents", "0 (= 90"):
        assert TEXT.index(inside) not in allowed, inside


def test_numbers_rule_allows_only_places_right_before_a_number(tok):
    allowed = sites(tok, "numbers")
    assert allowed and set(allowed) <= set(sites(tok, "word_boundary"))
    for start in allowed:
        ahead = TEXT[start:].lstrip(" $(=").lstrip()
        assert ahead[:1].isdigit(), TEXT[start:start + 10]
    for before in ("45 dollars", "12.5%", "1,200", "$30", "90 / 3", "3)."):
        at = TEXT.index(before)
        assert at in allowed or (TEXT[at - 1] == " " and at - 1 in allowed), before
    assert TEXT.index(" dollars") not in allowed and TEXT.index("that") not in allowed


def test_char_positions_agree_with_token_offsets(tok):
    x = tok.encode(TEXT)
    starts = token_starts(tok, TEXT, x)
    assert all(char_position(tok, x, i) == starts[i] for i in range(1, len(x)))


def test_an_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="call_sites"):
        allowed_positions("everywhere", "a b", [0, 1])
