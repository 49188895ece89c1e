"""Which documents the Calculator annotates (docs/method.md §2.0): arithmetic written in the text.

A document qualifies when a result cue ("=", "equals", "equal to", "total of", "average of") comes
before a number, or when three of its numbers lie within 100 tokens and one is the result of +, −, ×
or / on the other two, rounded to the decimals it is written with. Tokens are whitespace-separated
words; a word that holds several numbers ("3*4=12", "1/2/3") counts one token per number, so that
100 tokens never hold more than 101 numbers.

The triple search is linear in the document: each number is paired with the numbers of the next 100
tokens (at most 100), and the five results of every pair are looked up at once with NumPy, for each
count of decimals the text's numbers are written with: first in a bitmap of the scaled values, then,
for the few that pass, among the sorted values and their positions. The lookup allows for float
rounding, so it finds every true triple and, rarely, a near miss; each pair it finds is confirmed
with exact fractions before the document is kept.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

import numpy as np

WINDOW_TOKENS = 100
# Numbers of at most 18 digits before and 12 after the point; longer digit runs are not arithmetic.
_NUMBER = re.compile(r"(?<![\w.,])(?:\d{1,3}(?:,\d{3}){1,5}|\d{1,18})(?:\.\d{1,12})?(?!\d|[.,]\d)")
_RESULT_CUE = re.compile(r"(?:=|\bequals\b|\bequal to\b|\btotal of\b|\baverage of\b)\s*(?:[$€£]\s*)?\d", re.I)
_TOKEN = re.compile(r"\S+")
_PAIRS_PER_STEP = 1 << 14  # (5, 16k) float arrays stay in cache: 1.6x faster than 32k
# A result computed in floats from numbers read into floats is within ~5e-16 × (|a| + |b| + |result|)
# of the exact one; the search allows 20 times that.
_RELATIVE_ERROR = 1e-14
_BLOCK = 2**32


def has_result_cue(text: str) -> bool:
    """A result cue before a number: "= 42", "equals $5", "a total of 45"."""
    return _RESULT_CUE.search(text) is not None


@dataclass
class Numbers:
    """The numbers written in a text, in order (thousands separators allowed, signs ignored)."""

    written: list[str]  # digits as written, without separators
    values: np.ndarray  # float64
    places: np.ndarray  # int64, decimals as written: a result matches when rounded to this many
    positions: np.ndarray  # int64, strictly increasing token positions
    _exact: dict[tuple[Fraction, int], list[int]] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.written)

    def fraction(self, k: int) -> Fraction:
        return Fraction(self.written[k])

    def indices_of(self, value: Fraction, places: int) -> list[int]:
        """Indices of the numbers that are `value` written with `places` decimals, ascending."""
        if self._exact is None:
            self._exact = {}
            for k, (written, decimals) in enumerate(zip(self.written, self.places.tolist(), strict=True)):
                self._exact.setdefault((Fraction(written), decimals), []).append(k)
        return self._exact.get((value, places), [])


def find_numbers(text: str) -> Numbers:
    matches = list(_NUMBER.finditer(text))
    written = [m.group(0).replace(",", "") for m in matches]
    token_starts = np.fromiter((m.start() for m in _TOKEN.finditer(text)), np.int64)
    tokens = np.searchsorted(token_starts, np.fromiter((m.start() for m in matches), np.int64, len(matches)),
                             side="right") - 1
    shares_token = np.concatenate([[0], np.cumsum(tokens[1:] == tokens[:-1])])
    return Numbers(written, np.array([float(w) for w in written], np.float64),
                   np.array([len(w.partition(".")[2]) for w in written], np.int64), tokens + shares_token)


def results(a: Fraction, b: Fraction) -> set[Fraction]:
    """a + b, |a − b|, a × b, a / b, b / a, leaving out the trivial: operands 0 and 1, a − a and a / a."""
    if 0 in (a, b):
        return set()
    found = {a + b}
    if 1 not in (a, b):
        found.add(a * b)
    if a != b:
        found.add(abs(a - b))
        if 1 not in (a, b):
            found.update((a / b, b / a))
    return found


@dataclass(frozen=True)
class _Column:
    """The numbers written with one count of decimals: their distinct values, ascending, bitmaps of
    their scaled values (value × 10^places, integers) by unit and by blocks of _BLOCK, and who wrote
    which."""

    values: np.ndarray  # distinct float values, ascending
    scale: float  # 10^places
    units: np.ndarray  # bool, a power of two long: [n & mask] is set when n or n + 1 is a scaled value
    blocks: np.ndarray  # the same for the blocks n // _BLOCK of the scaled values
    rank: np.ndarray  # per number of the whole text: rank of its value here (-1 for other decimals)
    keys: np.ndarray  # rank * stride + index of each member, ascending
    stride: int

    def may_hold(self, results: np.ndarray, lowest: np.ndarray, spread: np.ndarray) -> np.ndarray:
        """False where no value of the column can be a result rounded to its places. `lowest` is
        the least each result can exactly be; `spread` bounds the magnitudes it was computed from."""
        scaled = results * self.scale
        # A scaled value n with |n - result| <= 0.5 + error < 1 is floor(result) or the next one;
        # results are >= 0, so the cast floors them (the overflowed ones are wide or beyond the top).
        hit = self.units[scaled.astype(np.int64) & (len(self.units) - 1)]
        wide = np.flatnonzero(spread >= 0.25 / (self.scale * _RELATIVE_ERROR))  # an error over 0.25
        if len(wide):  # from numbers of 14 digits or more: the same test by blocks
            error = spread.flat[wide] * (self.scale * _RELATIVE_ERROR)
            low = (scaled.flat[wide] - error - 0.5) / _BLOCK
            hit.flat[wide] = self.blocks[low.astype(np.int64) & (len(self.blocks) - 1)] | (error >= _BLOCK / 4)
        return hit & (lowest <= self.values[-1] + 0.5 / self.scale)


def _bitmap(integers: np.ndarray, size: int) -> np.ndarray:
    """bool[size] (a power of two): [n & (size - 1)] set for every n in `integers` and n + 1."""
    bits = np.zeros(size, bool)
    bits[integers & (size - 1)] = True
    return bits | np.roll(bits, -1)


def _columns(numbers: Numbers) -> dict[int, _Column]:
    columns = {}
    stride = len(numbers) + 1
    for places in np.unique(numbers.places).tolist():
        members = np.flatnonzero(numbers.places == places)
        values, member_rank = np.unique(numbers.values[members], return_inverse=True)
        rank = np.full(len(numbers), -1, np.int64)
        rank[members] = member_rank
        scale = 10.0**places
        scaled = np.rint(values * scale)
        scaled = scaled[scaled < 2.0**62].astype(np.int64)
        size = max(1024, 1 << (64 * len(values)).bit_length())
        columns[places] = _Column(values, scale, _bitmap(scaled, size), _bitmap(scaled // _BLOCK, size), rank,
                                  np.sort(member_rank * stride + members), stride)
    return columns


def has_arithmetic_triple(numbers: Numbers) -> bool:
    """Three numbers within WINDOW_TOKENS tokens, one the rounded result of +, −, ×, / on the others."""
    n = len(numbers)
    if n < 3:
        return False
    positions = numbers.positions
    ends = np.searchsorted(positions, positions + WINDOW_TOKENS, side="right")  # partners j < ends[i]
    starts = np.searchsorted(positions, positions - WINDOW_TOKENS, side="left")  # thirds k >= starts[j]
    exact_ids = _exact_ids(numbers.written)
    columns = _columns(numbers)
    pairs_of = ends - np.arange(n) - 1
    before = np.concatenate([[0], np.cumsum(pairs_of)])  # pairs of the numbers before each index
    first = 0
    while first < n:
        last = max(first + 1, int(np.searchsorted(before, before[first] + _PAIRS_PER_STEP, side="right")) - 1)
        i, j = _pairs(pairs_of, first, min(last, n))
        for pair_i, pair_j, places in _candidates(numbers, columns, exact_ids, i, j, starts, ends):
            if _confirmed(numbers, pair_i, pair_j, places, int(starts[pair_j]), int(ends[pair_i])):
                return True
        first = last
    return False


def _pairs(pairs_of: np.ndarray, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) for i in [first, last) and each of its pairs_of[i] partners j = i + 1, i + 2, …"""
    counts = pairs_of[first:last]
    i = np.repeat(np.arange(first, last), counts)
    return i, i + 1 + np.arange(len(i)) - np.repeat(np.cumsum(counts) - counts, counts)


def _exact_ids(written: list[str]) -> np.ndarray:
    """Equal ids for numerically equal numbers ("5", "5.0", "05")."""
    ids: dict[Decimal, int] = {}
    return np.array([ids.setdefault(Decimal(w), len(ids)) for w in written], np.int64)


def _candidates(numbers: Numbers, columns: dict[int, _Column], exact_ids: np.ndarray, i: np.ndarray,
                j: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> Iterator[tuple[int, int, int]]:
    """(i, j, places) for the pairs (i, j) with a result near a number written with `places` decimals
    among the numbers k in starts[j] <= k < ends[i], k not i or j."""
    a, b = numbers.values[i], numbers.values[j]
    nontrivial, no_one = (a != 0) & (b != 0), (a != 1) & (b != 1)
    distinct = nontrivial & (exact_ids[i] != exact_ids[j])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        results = np.stack([a + b, a * b, np.abs(a - b), a / b, b / a])  # the operations of `results`
        for row, computed in enumerate((nontrivial, nontrivial & no_one, distinct, distinct & no_one,
                                        distinct & no_one)):
            results[row, ~computed] = np.nan  # what `results` leaves out matches nothing
        spread = results + results[0]  # |a| + |b| + |result| bounds the float error (numbers are >= 0)
        lowest = results - spread * _RELATIVE_ERROR
        for places, column in columns.items():
            op, p = np.divmod(np.flatnonzero(column.may_hold(results, lowest, spread)), len(i))
            result, reach = results[op, p], 0.5 / column.scale + spread[op, p] * _RELATIVE_ERROR
            low = np.searchsorted(column.values, result - reach, side="left")
            high = np.searchsorted(column.values, result + reach, side="right")
            pi, pj = i[p], j[p]
            base = low * column.stride  # the members of value rank `low` in the window, then minus i and j
            inside = np.searchsorted(column.keys, base + ends[pi]) - np.searchsorted(column.keys, base + starts[pj])
            inside -= (column.rank[pi] == low).astype(np.int64) + (column.rank[pj] == low)
            # Where two values are near (a result halfway between them), the exact check decides.
            for k in np.flatnonzero((high > low) & ((inside > 0) | (high - low > 1))).tolist():
                yield int(pi[k]), int(pj[k]), places


def _confirmed(numbers: Numbers, i: int, j: int, places: int, start: int, end: int) -> bool:
    """Whether a number k in [start, end), k not i or j, is exactly a result of i and j rounded to
    `places` decimals (and written with that many)."""
    for value in results(numbers.fraction(i), numbers.fraction(j)):
        indices = numbers.indices_of(round(value, places), places)
        at = bisect.bisect_left(indices, start)
        for k in indices[at: at + 3]:
            if k < end and k not in (i, j):
                return True
    return False
