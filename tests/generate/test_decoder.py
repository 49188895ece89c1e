"""Cached decoding equals full forward passes; ragged batches give each row what it gets alone."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtoolformer.generate.sampling import Sampling, sample
from jtoolformer.lm import load_model
from jtoolformer.models import DecoderLM, KVCache


@pytest.fixture(scope="module", params=[("gptj_tiny", True), ("gptj_tiny", False), ("llama_tiny", True),
                                        ("llama_tiny", False)], ids=lambda p: f"{p[0]}-{'scanned' if p[1] else 'unrolled'}")
def lm(request):
    name, scan_layers = request.param
    return load_model(f"configs/{name}.yaml", seed=3, scan_layers=scan_layers)


def full_logits(lm, ids):
    return lm.logits(np.asarray([ids]))[0]


def test_every_decode_step_matches_full_forward(lm):
    prompt = [5, 17, 301, 2, 99]
    dec = lm.decoder
    state, _ = dec.start(lm.params, [prompt], max_new_tokens=8)
    seq = list(prompt)
    for _ in range(8):
        expected = full_logits(lm, seq)[-1]
        got = np.asarray(state.logits[0])
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
        token = int(np.argmax(got))
        seq.append(token)
        state = dec._step(lm.params, state, jnp.full((state.done.shape[0],), token, jnp.int32))


def test_greedy_generation_equals_argmax_of_full_forward(lm):
    prompt = [11, 12, 13]
    out = lm.decoder.generate(lm.params, [prompt], max_new_tokens=10)[0]
    seq = list(prompt)
    for _ in range(10):
        seq.append(int(np.argmax(full_logits(lm, seq)[-1])))
    assert out == seq[len(prompt):]


def test_rows_of_different_lengths_get_what_they_get_alone(lm):
    prompts = [[7], [3, 9, 27, 81, 243, 4, 8, 15, 16, 23, 42], [100, 200, 300, 400]]
    together = lm.decoder.generate(lm.params, prompts, max_new_tokens=12)
    alone = [lm.decoder.generate(lm.params, [p], max_new_tokens=12)[0] for p in prompts]
    assert together == alone


def test_stop_tokens_and_max_new_tokens_per_row(lm):
    prompts = [[1, 2, 3], [4, 5, 6]]
    free = lm.decoder.generate(lm.params, prompts, max_new_tokens=9)
    stop_at = free[0][3]
    out = lm.decoder.generate(lm.params, prompts, max_new_tokens=9, stop_token_ids=[[stop_at], []])
    assert out[0] == free[0][: free[0].index(stop_at) + 1]
    assert out[1] == free[1] and len(out[1]) == 9


def test_sampling_filters():
    logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]] * 4000))
    keys = jax.random.key(0)
    top1 = sample(logits, keys, Sampling(temperature=1.0, top_k=1))
    assert set(np.asarray(top1).tolist()) == {0}
    top2 = np.asarray(sample(logits, keys, Sampling(temperature=1.0, top_k=2)))
    assert set(top2.tolist()) == {0, 1} and abs((top2 == 0).mean() - 0.5 / 0.8) < 0.03
    nucleus = np.asarray(sample(logits, keys, Sampling(temperature=1.0, top_p=0.7)))
    assert set(nucleus.tolist()) == {0, 1}  # 0.5 < 0.7 needs the second token, not the third
    free = np.asarray(sample(logits, keys, Sampling(temperature=1.0)))
    np.testing.assert_allclose(np.bincount(free, minlength=4) / 4000, [0.5, 0.3, 0.15, 0.05], atol=0.03)
    with pytest.raises(ValueError):
        Sampling(top_p=0.0)


def test_sampled_generation_is_reproducible_for_a_seed(lm):
    kw = dict(max_new_tokens=8, sampling=Sampling(temperature=1.0, top_k=50))
    a = lm.decoder.generate(lm.params, [[1, 2]], seed=7, **kw)
    b = lm.decoder.generate(lm.params, [[1, 2]], seed=7, **kw)
    c = lm.decoder.generate(lm.params, [[1, 2]], seed=8, **kw)
    assert a == b and a != c


def test_rows_not_fed_resume_unchanged_through_compaction_and_growth(lm):
    prompts = [[5, 17, 301], [2, 99, 7, 8, 9, 10], [42]]
    dec = lm.decoder
    state, _ = dec.start(lm.params, prompts, max_new_tokens=4)
    seqs = [list(p) for p in prompts]
    rng = np.random.default_rng(0)
    for _ in range(120):  # far more steps than the cache has slots
        fed = np.zeros(state.done.shape[0], bool)
        fed[:3] = rng.random(3) < 0.6
        tokens = np.asarray(rng.integers(1, 500, fed.shape), np.int32)
        for r in np.flatnonzero(fed):
            seqs[r].append(int(tokens[r]))
        state = dec.make_room(state, 1)
        state = dec._step(lm.params, state, jnp.asarray(tokens), jnp.asarray(fed))
    assert state.cache.length > 64  # grown: compaction alone could not fit the longest row
    for r, seq in enumerate(seqs):
        np.testing.assert_allclose(np.asarray(state.logits[r]), full_logits(lm, seq)[-1], atol=1e-5, rtol=1e-5)
        assert int(state.positions[r]) == len(seq)


def test_rows_continuing_a_shared_prefix_match_full_forwards(lm):
    prefix, tails = [4, 8, 15, 16, 23], [[42, 7, 9], [108, 3, 5]]
    model, cfg = DecoderLM(lm.config), lm.config
    head = lm.decoder.new_cache(1, len(prefix))
    _, head = model.apply({"params": lm.params}, jnp.asarray([prefix]), jnp.arange(len(prefix))[None], cache=head)
    cache = KVCache.zeros(cfg, len(tails), 8).replace(prefix_k=head.k, prefix_v=head.v)
    positions = len(prefix) + jnp.broadcast_to(jnp.arange(3), (len(tails), 3))
    logits, _ = model.apply({"params": lm.params}, jnp.asarray(tails), positions, cache=cache)
    for row, tail in enumerate(tails):
        np.testing.assert_allclose(np.asarray(logits[row]), full_logits(lm, prefix + tail)[len(prefix):],
                                   atol=1e-5, rtol=1e-5)


def test_groups_of_rows_continuing_their_own_truncated_prefix_match_full_forwards(lm):
    """Two documents kept once each as the prefix of a group of two rows; each row sees its
    document only up to its own cut, as call sampling does."""
    prefixes = [[4, 8, 15, 16, 23], [42, 4, 7, 1, 2]]
    cuts, tails = [5, 2, 3, 5], [[42, 7], [108, 3], [9, 9], [11, 12]]
    model, cfg = DecoderLM(lm.config), lm.config
    docs = lm.decoder.new_cache(2, 5)
    _, docs = model.apply({"params": lm.params}, jnp.asarray(prefixes), jnp.broadcast_to(jnp.arange(5), (2, 5)),
                          cache=docs)
    seen = jnp.arange(5)[None] < jnp.asarray(cuts)[:, None]
    cache = KVCache.zeros(cfg, 4, 4).replace(prefix_k=docs.k, prefix_v=docs.v, prefix_valid=seen)
    positions = jnp.asarray(cuts)[:, None] + jnp.arange(2)[None]
    logits, _ = model.apply({"params": lm.params}, jnp.asarray(tails), positions, cache=cache)
    for row, (cut, tail) in enumerate(zip(cuts, tails)):
        np.testing.assert_allclose(np.asarray(logits[row]), full_logits(lm, prefixes[row // 2][:cut] + tail)[cut:],
                                   atol=1e-5, rtol=1e-5)
