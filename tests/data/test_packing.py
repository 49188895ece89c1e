from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jtoolformer.data.packing import Packer, Text, attention_mask_from_segments, pack_texts

SEQ_LEN = 16

texts_strategy = st.lists(
    st.tuples(
        st.lists(st.integers(1, 50_000), min_size=1, max_size=2 * SEQ_LEN),
        st.lists(st.booleans(), min_size=2 * SEQ_LEN, max_size=2 * SEQ_LEN),
    ).map(lambda pair: Text(pair[0], pair[1][: len(pair[0])])),
    max_size=12,
)


def segments(rows: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The texts as they lie in the rows, in row-major order."""
    found = []
    for r, ids in enumerate(rows["segment_ids"]):
        for segment in range(1, ids.max(initial=0) + 1):
            at = np.flatnonzero(ids == segment)
            found.append({key: values[r, at] for key, values in rows.items()})
    return found


@settings(max_examples=150, deadline=None)
@given(texts=texts_strategy, mode=st.sampled_from(["pack", "pad"]))
def test_every_token_once_in_order_with_right_segments_positions_and_loss(texts, mode):
    rows, truncated = pack_texts(texts, SEQ_LEN, mode)
    assert truncated == sum(len(t.tokens) > SEQ_LEN for t in texts)
    placed = segments(rows)
    assert len(placed) == len(texts)
    for text, seg in zip(texts, placed, strict=True):
        tokens = np.asarray(text.tokens[:SEQ_LEN])
        mask = np.asarray(text.loss_mask[:SEQ_LEN], np.float32)
        np.testing.assert_array_equal(seg["inputs"], tokens)
        np.testing.assert_array_equal(seg["positions"], np.arange(len(tokens)))
        np.testing.assert_array_equal(seg["targets"][:-1], tokens[1:])
        np.testing.assert_array_equal(seg["loss_mask"], np.append(mask[1:], 0.0))
    ids = rows["segment_ids"]
    # Segments are numbered 1..m from the left; padding only at the end of a row.
    for row in ids:
        used = row[row > 0]
        assert list(np.unique(used)) == list(range(1, len(np.unique(used)) + 1))
        assert np.all(np.diff(used) >= 0) and np.all(row[len(used) :] == 0)
    padding = ids == 0
    assert not rows["loss_mask"][padding].any()
    assert not rows["inputs"][padding].any() and not rows["positions"][padding].any()
    # A loss never sits on a target that belongs to another text or to padding.
    next_ids = np.concatenate([ids[:, 1:], np.zeros_like(ids[:, :1])], axis=1)
    assert not rows["loss_mask"][(next_ids != ids) | padding].any()


@settings(max_examples=100, deadline=None)
@given(texts=texts_strategy)
def test_packed_and_padded_rows_train_on_the_same_triples(texts):
    def triples(rows):
        keep = rows["loss_mask"] > 0
        return Counter(zip(rows["inputs"][keep], rows["targets"][keep], rows["positions"][keep], strict=True))

    packed, _ = pack_texts(texts, SEQ_LEN, "pack")
    padded, _ = pack_texts(texts, SEQ_LEN, "pad")
    assert triples(packed) == triples(padded)
    assert len(padded["inputs"]) == len(texts)


@settings(max_examples=100, deadline=None)
@given(lengths=st.lists(st.integers(1, SEQ_LEN), min_size=1, max_size=20))
def test_a_row_closes_only_when_the_next_text_does_not_fit(lengths):
    rows, _ = pack_texts([Text([1] * n) for n in lengths], SEQ_LEN, "pack")
    used = (rows["segment_ids"] > 0).sum(axis=1)
    first_lengths = (rows["segment_ids"] == 1).sum(axis=1)
    assert np.all(used[:-1] + first_lengths[1:] > SEQ_LEN)
    assert used.sum() == sum(lengths)


def test_packer_hands_back_rows_as_they_close():
    packer = Packer(seq_len=4)
    assert packer.add(Text([1, 2])) is None
    assert packer.add(Text([])) is None  # no tokens: skipped
    assert packer.add(Text([3, 4])) is None
    first = packer.add(Text([5, 6, 7, 8, 9]))
    assert first is not None and first["segment_ids"].tolist() == [1, 1, 2, 2]
    assert packer.open_texts == 1 and packer.truncated == 1 and packer.rows_opened == 2
    last = packer.flush()
    assert last is not None and last["inputs"].tolist() == [5, 6, 7, 8]
    assert packer.flush() is None


def test_mask_of_wrong_length_is_rejected():
    with pytest.raises(ValueError, match="one flag per token"):
        pack_texts([Text([1, 2, 3], [True, False])], SEQ_LEN)


def test_attention_mask_is_causal_within_segments_and_blind_on_padding():
    mask = attention_mask_from_segments(np.array([[1, 1, 2, 2, 2, 0]]))
    expected = np.array(
        [
            [1, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [0, 0, 1, 0, 0, 0],
            [0, 0, 1, 1, 0, 0],
            [0, 0, 1, 1, 1, 0],
            [0, 0, 0, 0, 0, 0],
        ],
        bool,
    )
    assert mask.shape == (1, 6, 6) and mask.dtype == bool
    np.testing.assert_array_equal(mask[0], expected)
