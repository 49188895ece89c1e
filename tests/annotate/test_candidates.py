"""Stages 1–2 on a tiny model whose behaviour is set by construction."""

import dataclasses

import jax
import numpy as np
import pytest

from jtoolformer import load_model
from jtoolformer.annotate.candidates import SENTINEL, CandidateSampler
from jtoolformer.generate.call_tokens import api_start_ids, call_stop_ids
from jtoolformer.generate.sampling import Sampling
from jtoolformer.lm import LM
from jtoolformer.models import ModelConfig

PROMPT = f"Add calls. Example:\nInput: 2 + 2 is 4.\nOutput: 2 + 2 is [Calculator(2 + 2)] 4.\n\nInput: {SENTINEL}\nOutput:"


@pytest.fixture(scope="module")
def tokenizer():
    return load_model().tokenizer  # SmolLM2's byte-level BPE


def tiny_lm(tokenizer, api_bias: float, seed: int = 0, **overrides) -> LM:
    cfg = ModelConfig(arch="gptj", vocab_size=tokenizer.vocab_size, d_model=32, n_layers=2, n_heads=2,
                      rotary_dim=8, max_positions=512, bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id, **overrides)
    base = load_model(cfg, seed=seed)
    params = jax.tree.map(lambda x: x, base.params)
    bias = np.zeros(cfg.vocab_size, np.float32)
    bias[api_start_ids(tokenizer)] = api_bias
    params["lm_head"]["bias"] = jax.numpy.asarray(bias)
    return LM(cfg, params, tokenizer, base.mesh)


def allowing(docs, where=lambda k, i: True):
    """The documents with calls allowed at the positions i of document k where `where(k, i)`."""
    return [dataclasses.replace(d, allowed=tuple(i for i in range(len(d.x)) if where(k, i))) for k, d in enumerate(docs)]

def sampled_positions(tokenizer, *, seed, max_call_tokens, temperature, top_k, texts):
    """A sampler over a tiny LM with p(API) left as it is, its prepared documents, and stage 1's kept
    positions and state for them (every position allowed, τ_s below any p_i)."""
    sampler = CandidateSampler(tiny_lm(tokenizer, api_bias=0.0, seed=seed), PROMPT,
                               max_call_tokens=max_call_tokens, sampling=Sampling(temperature=temperature))
    docs = [sampler.prepare(tokenizer.encode(t), t) for t in texts]
    _, kept, state = sampler.positions(allowing(docs), threshold=-1.0, top_k=top_k)
    return sampler, docs, kept, state



def test_api_tokens_found_from_the_tokenizer(tokenizer):
    starts = api_start_ids(tokenizer)
    assert {tokenizer.decode([i]) for i in starts} >= {"[", " ["}
    stops = call_stop_ids(tokenizer)
    assert tokenizer.encode(")]")[0] in stops and tokenizer.encode(" ->")[0] in stops


def test_positions_follow_threshold_top_k_and_skip_position_zero(tokenizer):
    lm = tiny_lm(tokenizer, api_bias=30.0)  # "[" all but certain everywhere
    sampler = CandidateSampler(lm, PROMPT)
    texts = ["The school ordered 18 boxes, 180 pencils.", "Paris is the capital of France."]
    docs = [sampler.prepare(tokenizer.encode(t), t) for t in texts]
    every = [range(len(d.x)) for d in docs]
    scores, kept, _ = sampler.positions(allowing(docs, lambda k, i: i != 2), threshold=0.5, top_k=3)
    assert [sorted(s) for s in scores] == [[i for i in r if i not in (0, 2)] for r in every]
    for d, doc in enumerate(docs):
        mine = [p for p in kept if p.doc == d]
        assert len(mine) == 3 and all(p.i not in (0, 2) for p in mine) and all(p.p > 0.99 for p in mine)
        assert [p.i for p in mine] == sorted(p.i for p in mine)
        assert all(p.start_token in api_start_ids(tokenizer) for p in mine)
    _, none, _ = sampler.positions(allowing(docs), threshold=0.5, top_k=3)
    assert len(none) == 6
    low = tiny_lm(tokenizer, api_bias=-30.0)
    _, nothing, _ = CandidateSampler(low, PROMPT).positions(allowing(docs), threshold=0.05, top_k=5)
    assert nothing == []  # a model that never calls is a normal outcome, not a crash


def test_stage_1_scores_only_where_the_call_site_rule_lets_a_call_go(tokenizer):
    text = "The school ordered 18 boxes, 180 pencils."
    lm, x = tiny_lm(tokenizer, api_bias=0.0), tokenizer.encode(text)
    scored = {}
    for rule in ("numbers", "word_boundary"):
        sampler = CandidateSampler(lm, PROMPT, call_sites=rule)
        doc = sampler.prepare(x, text)
        [scored[rule]], _, _ = sampler.positions([doc], threshold=-1.0, top_k=1)
    assert {text[doc.starts[i]:].lstrip()[:3] for i in scored["numbers"]} == {"18 ", "180"}
    assert set(scored["numbers"]) < set(scored["word_boundary"])
    assert all(text[doc.starts[i] - 1:doc.starts[i] + 1] not in ("18", "80") for i in scored["word_boundary"])


@pytest.mark.parametrize("call_head", ["", "Calculator("])
def test_calls_sampled_from_the_truncated_cache_equal_decoding_the_prefix(tokenizer, call_head):
    """Rows grouped by document, some documents without a kept position, and rows that go on alone
    once most have stopped: every call is still what decoding its own prefix (and the forced call
    head, when there is one) gives."""
    lm = tiny_lm(tokenizer, api_bias=0.0, seed=1)
    sampler = CandidateSampler(lm, PROMPT, max_call_tokens=6, sampling=Sampling(temperature=0.0), call_head=call_head)
    head = tokenizer.encode(call_head) if call_head else []
    texts = ["Out of 1400 participants, 400 passed.", "Paris is the capital of France.",
             "The school ordered 18 boxes, 180 pencils."]
    docs = [sampler.prepare(tokenizer.encode(t), t) for t in texts]
    docs = allowing(docs, lambda k, i: k != 1 and i != 3 * k)
    _, kept, state = sampler.positions(docs, threshold=-1.0, top_k=4)
    assert {p.doc for p in kept} == {0, 2}
    calls = sampler.sample_calls(docs, kept, state, m=1, doc_keys=[jax.random.key(0)] * 3)
    assert len(calls) == 8
    for c, p in zip(calls, kept):
        doc = docs[p.doc]
        prefix = [*sampler.head, *doc.tail[: doc.copy_start + p.i], p.start_token, *head]
        greedy = lm.decoder.generate(lm.params, [prefix], max_new_tokens=6, stop_token_ids=[list(sampler.stop_ids)])[0]
        assert c.text == tokenizer.decode([p.start_token, *head, *greedy])
        assert c.text.lstrip().startswith("[" + call_head)


def test_a_row_budget_splits_decoding_without_changing_any_sampled_call(tokenizer):
    """k·m rows decoded a few at a time (documents split over several groups) give exactly the calls of
    one big batch: every (document, position, sample) has its own key."""
    lm = tiny_lm(tokenizer, api_bias=0.0, seed=3)
    sampler = CandidateSampler(lm, PROMPT, max_call_tokens=5, sampling=Sampling(temperature=1.0))
    texts = ["Out of 1400 participants, 400 passed.", "The school ordered 18 boxes, 180 pencils."]
    docs = [sampler.prepare(tokenizer.encode(t), t) for t in texts]
    _, kept, state = sampler.positions(allowing(docs), threshold=-1.0, top_k=3)
    keys = [jax.random.key(7), jax.random.key(8)]
    whole = sampler.sample_calls(docs, kept, state, 4, keys, max_rows=256)
    batches = []
    decode_rows = sampler._decode_rows
    sampler._decode_rows = lambda context, state, done, *a: batches.append(len(done)) or decode_rows(context, state, done, *a)
    budgeted = sampler.sample_calls(docs, kept, state, 4, keys, max_rows=5)
    assert len(batches) > 2 and max(batches) <= 5
    assert sorted(budgeted, key=lambda c: (c.doc, c.i, c.sample)) == sorted(whole, key=lambda c: (c.doc, c.i, c.sample))
    assert len({c.text for c in whole}) > 3  # sampled, not all alike


def test_rows_going_on_alone_after_the_others_stop_sample_what_they_would_in_the_full_batch(tokenizer):
    sampler, docs, kept, state = sampled_positions(
        tokenizer, seed=2, max_call_tokens=9, temperature=0.0, top_k=4,
        texts=["Out of 1400 participants, 400 passed.", "Paris is the capital of France.",
               "The school ordered 18 boxes, 180 pencils."])
    lm = sampler.lm
    keys = [jax.random.key(0)] * 3
    sampler.stop_ids = np.array([-1], np.int32)
    decode_rows, written = sampler._decode_rows, []
    sampler._decode_rows = lambda *a: written.append(decode_rows(*a)) or written[-1]
    sampler.sample_calls(docs, kept, state, 1, keys)
    sampler._decode_rows = decode_rows
    free = [row.tolist() for row in written[0][: len(kept)]]
    # every row but the first stops within two tokens: the first then goes on alone
    stops = {t for ids in free[1:] for t in ids[:2]} - set(free[0])
    sampler = CandidateSampler(lm, PROMPT, max_call_tokens=9, sampling=Sampling(temperature=0.0))
    sampler.stop_ids = np.array(sorted(stops), np.int32)
    sampler.min_rows_to_regroup = 1  # a batch this small goes on alone too
    compactions = []
    compact = sampler._compact
    sampler._compact = lambda *a: compactions.append(a[1]) or compact(*a)
    calls = sampler.sample_calls(docs, kept, state, 1, keys)
    assert compactions
    for c, p in zip(calls, kept):
        doc = docs[p.doc]
        prefix = [*sampler.head, *doc.tail[: doc.copy_start + p.i], p.start_token]
        alone = lm.decoder.generate(lm.params, [prefix], max_new_tokens=9, stop_token_ids=[sorted(stops)])[0]
        assert c.text == tokenizer.decode([p.start_token, *alone])
    assert len(tokenizer.encode(calls[0].text)) == 10  # it did go on to the end


def test_rows_of_several_documents_going_on_alone_keep_one_prefix_per_document(tokenizer):
    """Once few rows still write, the smaller batch keeps each document's prefix once for all its rows
    (a copy per row took 1.3 GB for SmolLM2's 32 rows), and samples exactly what the full batch would."""
    lm = tiny_lm(tokenizer, api_bias=0.0, seed=4)
    sampler = CandidateSampler(lm, PROMPT, max_call_tokens=12, sampling=Sampling(temperature=1.0))
    sampler.stop_ids = np.arange(0, tokenizer.vocab_size, 3, dtype=np.int32)  # a third of the tokens stop a row
    texts = ["Out of 1400 participants, 400 passed.", "The school ordered 18 boxes, 180 pencils."]
    docs = [sampler.prepare(tokenizer.encode(t), t) for t in texts]
    _, kept, state = sampler.positions(allowing(docs), threshold=-1.0, top_k=4)
    keys = [jax.random.key(5), jax.random.key(6)]
    compactions = []
    compact = sampler._compact
    sampler._compact = lambda state, rows, groups, *a: compactions.append((rows, groups)) or compact(state, rows, groups, *a)
    calls = sampler.sample_calls(docs, kept, state, 8, keys)
    sampler._compact, sampler._regroup = compact, lambda *a: None
    assert sampler.sample_calls(docs, kept, state, 8, keys) == calls
    assert any(len(set(groups.tolist())) == 2 for _, groups in compactions)  # both documents still wrote
    assert all(len(groups) < len(rows) for rows, groups in compactions)
    assert len({c.text for c in calls}) > 10 and len({len(tokenizer.encode(c.text)) for c in calls}) > 3


@pytest.mark.parametrize("scan_layers", [False, True])
def test_a_token_budget_runs_stage_1_a_few_rows_at_a_time_with_the_same_positions_and_calls(tokenizer, scan_layers):
    lm = tiny_lm(tokenizer, api_bias=0.0, seed=3, scan_layers=scan_layers)
    texts = ["Out of 1400 participants, 400 passed.", "The school ordered 18 boxes, 180 pencils.",
             "Paris is the capital of France.", "A train covers 120 km in 2 hours, 60 km per hour."]
    whole = CandidateSampler(lm, PROMPT, max_call_tokens=5, sampling=Sampling(temperature=1.0))
    budgeted = CandidateSampler(lm, PROMPT, max_call_tokens=5, sampling=Sampling(temperature=1.0),
                                max_position_tokens=1)
    chunks, tails = [], budgeted._tails
    budgeted._tails = lambda *a, chunk: chunks.append(chunk) or tails(*a, chunk=chunk)
    docs = [whole.prepare(tokenizer.encode(t), t) for t in texts]
    docs = allowing(docs)
    keys = [jax.random.key(n) for n in range(4)]
    results = []
    for sampler in (whole, budgeted):
        scores, kept, state = sampler.positions(docs, threshold=-1.0, top_k=3)
        results.append((scores, kept, sampler.sample_calls(docs, kept, state, 2, keys)))
    assert chunks == [1]  # four rows, one at a time
    (scores, kept, calls), (scores_b, kept_b, calls_b) = results
    for s, s_b in zip(scores, scores_b):
        assert s.keys() == s_b.keys()
        np.testing.assert_allclose(list(s.values()), list(s_b.values()), rtol=1e-5)
    assert [(p.doc, p.i, p.start_token) for p in kept] == [(p.doc, p.i, p.start_token) for p in kept_b]
    assert calls == calls_b and len(calls) == 24


def test_a_prefix_budget_decodes_fewer_documents_at_a_time_with_the_same_calls(tokenizer):
    """Rows hold the few-shot head, kept once, and their document's tail: a budget on those tokens
    (the head counted once) decodes two documents at a time here, then one, and every call stays what
    the batch of all three gave."""
    sampler, docs, kept, state = sampled_positions(
        tokenizer, seed=3, max_call_tokens=5, temperature=1.0, top_k=2,
        texts=["Out of 1400 participants, 400 passed.", "The school ordered 18 boxes, 180 pencils.",
               "Paris is the capital of France."])
    keys = [jax.random.key(n) for n in range(3)]
    batches, sample_groups = [], sampler._sample_groups
    sampler._sample_groups = lambda docs, groups, *a: batches.append(len(groups)) or sample_groups(docs, groups, *a)
    whole = sampler.sample_calls(docs, kept, state, 3, keys)
    budgeted = sampler.sample_calls(docs, kept, state, 3, keys, max_prefix_tokens=len(sampler.head) + 2 * state.width)
    assert batches == [3, 2, 1]
    assert budgeted == whole and len(whole) == 18


def test_new_params_give_the_positions_of_those_params(tokenizer):
    """The few-shot head's keys and values come from the params of each batch, not from the first
    params the sampler saw."""
    lm, other = tiny_lm(tokenizer, api_bias=0.0, seed=0), tiny_lm(tokenizer, api_bias=0.0, seed=1)
    text = "Out of 1400 participants, 400 passed."
    sampler = CandidateSampler(lm, PROMPT)
    doc = sampler.prepare(tokenizer.encode(text), text)
    [before], _, _ = sampler.positions([doc], threshold=-1.0, top_k=1)
    lm.params = other.params
    [after], _, _ = sampler.positions([doc], threshold=-1.0, top_k=1)
    [expected], _, _ = CandidateSampler(other, PROMPT).positions([doc], threshold=-1.0, top_k=1)
    assert after.keys() == expected.keys()
    np.testing.assert_allclose(list(after.values()), list(expected.values()), rtol=1e-5)
    assert not np.allclose(list(before.values()), list(after.values()), rtol=1e-3)


def test_a_run_padded_to_its_batch_size_and_k_m_decodes_every_batch_in_one_shape(tokenizer):
    """Two batches with different numbers of documents and of kept positions: padded to the run's batch
    size and sized for k·m calls per document, they compile stage 1 and the decoding program once (each
    new shape costs SmolLM2 about 30 MB of host memory on XLA:CPU), and sample the calls that unpadded
    batches sample."""
    lm = tiny_lm(tokenizer, api_bias=0.0, seed=5)
    texts = ["Out of 1400 participants, 400 passed.", "The school ordered 18 boxes, 180 pencils.",
             "Paris is the capital of France, and Lyon is its third city.",
             "A train covers 120 km in 2 hours, 60 km per hour."]  # tails of one padded width
    padded, plain = (CandidateSampler(lm, PROMPT, max_call_tokens=5, sampling=Sampling(temperature=1.0))
                     for _ in range(2))
    docs = allowing([padded.prepare(tokenizer.encode(t), t) for t in texts], lambda k, i: k < 3 or i == 4)
    keys = [jax.random.key(n) for n in range(4)]
    decoded = {padded: set(), plain: set()}  # the shapes each decoding program ran at
    for sampler in decoded:
        def spy(params, head, tails, state, *rest, sampler=sampler, decode=sampler._decode):
            decoded[sampler].add((tails.valid.shape, state.tokens.shape, state.cache.prefix_rows.shape))
            return decode(params, head, tails, state, *rest)
        sampler._decode = spy
    for batch, batch_keys in ((docs[:3], keys[:3]), (docs[3:], keys[3:])):
        _, kept, state = padded.positions(batch, threshold=-1.0, top_k=3, pad_to_docs=3)
        calls = padded.sample_calls(batch, kept, state, 2, batch_keys, calls_per_doc=6)
        _, kept_plain, state_plain = plain.positions(batch, threshold=-1.0, top_k=3)
        assert kept == kept_plain
        assert calls == plain.sample_calls(batch, kept_plain, state_plain, 2, batch_keys)
    assert len({len(p.allowed) for p in docs}) > 1 and len(calls) == 2
    assert padded._tails._cache_size() == len(decoded[padded]) == 1
    assert plain._tails._cache_size() == len(decoded[plain]) == 2
