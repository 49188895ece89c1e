"""Hostile inputs for the tool fuzz tests: generated text of every kind plus known attacks."""

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ_SETTINGS = settings(max_examples=10_000, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TIME_LIMIT_S = 10.0  # the executor's default per-call limit; a loaded CI machine made 1 s flaky

ONE_MB = 1_000_000
ATTACKS = [
    "__import__('os').system('echo pwned')",
    "9**9**9**9",
    "2 ** 100000000",
    "10**10**10",
    "(" * 100_000,
    "(" * 150 + "1" + ")" * 150,
    "-" * 190 + "1",
    "1+" * 99 + "1",
    "1/0",
    "1e308 * 1e308",
    "0x7fffffff",
    "1_000_000",
    "lambda: 0",
    "().__class__.__bases__[0].__subclasses__()",
    "[x for x in range(10**9)]",
    "x" * ONE_MB,
    "9" * ONE_MB,
    "[" * ONE_MB,
    "[Calculator(" * 50_000,
    "->" * 100_000,
    "\x00",
    "1 + \x00 2",
    "\ud800",
    "abc\udcff\udc80def",
    "\u202e1+1",
    "𝟏+𝟐",
    "٣ + ٣",
    "1" * 300,
    "\n" * 10_000,
    '"' * 1000,
]

_ARITHMETIC = st.text(alphabet="0123456789+-*/()., %x×÷−$=", max_size=60)
_SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"])
_INVALID_UTF8 = st.binary(max_size=80).map(lambda b: b.decode("utf-8", "surrogateescape"))
_CALL_LIKE = st.lists(st.sampled_from(["[", "]", "(", ")", "->", "→", "Calculator", "QA", '"', " ", "1 + 2",
                                       "MT", "WikiSearch", "\x00", "\ud800"]), max_size=20).map("".join)

hostile_text = st.one_of(
    st.text(max_size=200),
    st.text(st.characters(codec=None), max_size=200),
    st.text(_SURROGATES, max_size=10),
    _INVALID_UTF8,
    _ARITHMETIC,
    _CALL_LIKE,
    st.sampled_from(ATTACKS),
)
