import json
import random
from collections import Counter

import numpy as np
import pytest

from jtoolformer.data.corpus import DEMO_CORPUS, open_corpus
from jtoolformer.data.packing import Text
from jtoolformer.data.pipeline import make_pipeline

rng = random.Random(0)
TEXTS = ["".join(rng.choices("abcdefghij ", k=rng.randint(1, 40))) for _ in range(30)]


def encode(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def pipeline(texts=TEXTS, **overrides):
    return make_pipeline(texts, encode, **({"seq_len": 24, "global_batch": 4, "seed": 7} | overrides))


def take(iterator, n):
    return [next(iterator) for _ in range(n)]


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def row_tokens(batch) -> list[tuple[int, ...]]:
    """The texts in a batch, as token tuples read back from the packed rows."""
    out = []
    for inputs, ids in zip(batch["inputs"], batch["segment_ids"], strict=True):
        out += [tuple(inputs[ids == s].tolist()) for s in range(1, ids.max(initial=0) + 1)]
    return out


@pytest.mark.parametrize("mode", ["pack", "pad"])
def test_same_seed_same_batches_and_another_seed_others(mode):
    first = take(iter(pipeline(mode=mode)), 12)
    assert_same_batches(first, take(iter(pipeline(mode=mode)), 12))
    other = take(iter(pipeline(mode=mode, seed=8)), 12)
    assert any((a["inputs"] != b["inputs"]).any() for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize(("mode", "stop_after"), [("pack", 3), ("pack", 9), ("pad", 8)])
def test_restored_iterator_yields_exactly_the_remaining_batches(mode, stop_after):
    total = 15  # more than two epochs of TEXTS
    unbroken = take(iter(pipeline(mode=mode)), total)
    interrupted = iter(pipeline(mode=mode))
    take(interrupted, stop_after)
    state = json.loads(json.dumps(interrupted.get_state()))

    restored = iter(pipeline(mode=mode))
    restored.set_state(state)
    assert_same_batches(take(restored, total - stop_after), unbroken[stop_after:])


def test_restored_near_the_end_of_finite_epochs_finishes_the_same_way():
    unbroken_iterator = iter(pipeline(num_epochs=2))
    unbroken = list(unbroken_iterator)
    interrupted = iter(pipeline(num_epochs=2))
    take(interrupted, len(unbroken) - 2)
    restored = iter(pipeline(num_epochs=2))
    restored.set_state(interrupted.get_state())
    assert_same_batches(list(restored), unbroken[-2:])
    assert restored.truncated_texts == unbroken_iterator.truncated_texts > 0


def test_state_from_another_layout_is_refused():
    state = iter(pipeline()).get_state()
    with pytest.raises(ValueError, match="restore into a pipeline with the saved layout"):
        iter(pipeline(seq_len=32)).set_state(state)


@pytest.mark.parametrize("mode", ["pack", "pad"])
def test_two_hosts_together_see_exactly_the_global_batch(mode):
    whole = take(iter(pipeline(mode=mode)), 6)
    hosts = [take(iter(pipeline(mode=mode, process_index=h, process_count=2)), 6) for h in range(2)]
    for step, batch in enumerate(whole):
        for key in batch:
            assert hosts[0][step][key].shape == (2, 24)
            np.testing.assert_array_equal(np.concatenate([hosts[0][step][key], hosts[1][step][key]]), batch[key])


def test_each_epoch_holds_every_text_once_in_a_new_order():
    batches = list(iter(pipeline(mode="pad", global_batch=5, seq_len=64, num_epochs=3)))
    assert len(batches) == 3 * len(TEXTS) // 5
    epochs = [sum((row_tokens(b) for b in batches[e * 6 : (e + 1) * 6]), []) for e in range(3)]
    for epoch in epochs:
        assert Counter(epoch) == Counter(tuple(encode(t)) for t in TEXTS)
    assert epochs[0] != epochs[1] != epochs[2]


def test_last_partial_batch_is_padded_and_truncations_counted():
    iterator = iter(pipeline(seq_len=8, global_batch=4, num_epochs=1))
    batches = list(iterator)
    assert all(b["inputs"].shape == (4, 8) for b in batches)
    assert not batches[-1]["segment_ids"][-1].any(), "the final batch ends with padding rows"
    assert iterator.truncated_texts == sum(len(t) > 8 for t in TEXTS)
    assert sorted(sum((row_tokens(b) for b in batches), [])) == sorted(tuple(encode(t)[:8]) for t in TEXTS)


def test_masked_encoding_reaches_the_loss_mask():
    def masked(text: str) -> Text:
        tokens = encode(text)
        return Text(tokens, [t != ord("x") for t in tokens])

    batch = next(iter(make_pipeline(["axbxc", "xxyy"], masked, seq_len=16, global_batch=1, seed=0, num_epochs=1)))
    kept = batch["targets"][0][batch["loss_mask"][0] > 0]
    assert sorted(kept.tolist()) == sorted(encode("bcyy"))


def test_pipeline_over_the_demo_corpus(tmp_path):
    corpus = open_corpus(DEMO_CORPUS, tmp_path)
    batch = next(iter(make_pipeline(corpus, encode, seq_len=128, global_batch=8, seed=0)))
    documents = {tuple(encode(doc["text"])[:128]) for doc in corpus}
    assert len(row_tokens(batch)) >= 8 and set(row_tokens(batch)) <= documents
