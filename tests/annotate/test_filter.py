"""weighted_losses against a direct PyTorch computation with transformers on the same tiny model."""

import jax
import numpy as np
import pytest
import torch
import transformers

from jtoolformer import load_model
from jtoolformer.annotate import weighted_losses
from jtoolformer.annotate.filter import (
    WEIGHTS, Scorer, ScoreRequest, hidden_program, losses_program, same_number, states_result,
)
from jtoolformer.checkpoints.hf import save_hf
from jtoolformer.sharding import make_mesh


def test_weights_are_the_papers():
    np.testing.assert_allclose(WEIGHTS, np.array([1.0, 0.8, 0.6, 0.4, 0.2]) / 3.0)


@pytest.fixture(scope="module", params=["gptj_tiny", "llama_tiny"])
def models(request, tmp_path_factory):
    lm = load_model(f"configs/{request.param}.yaml", seed=5)
    d = tmp_path_factory.mktemp(request.param)
    save_hf(lm.params, lm.config, d)
    cls = transformers.GPTJForCausalLM if lm.config.arch == "gptj" else transformers.LlamaForCausalLM
    return lm, cls.from_pretrained(d).eval()


def reference_loss(model, bos, z, x, i):
    seq = [bos, *z, *x]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([seq])).logits[0].double(), -1).numpy()
    start = 1 + len(z)
    raw = [max(0.0, 1 - 0.2 * t) for t in range(5)]
    total = 0.0
    for j in range(i, len(x)):
        t = j - i
        if t < 5:
            total -= raw[t] / sum(raw) * logp[start + j - 1, x[j]]
    return total


def test_matches_transformers(models):
    lm, ref = models
    rng = np.random.default_rng(0)
    for trial in range(4):
        x = rng.integers(1, 512, rng.integers(3, 40)).tolist()
        prefixes = [[], rng.integers(1, 512, 7).tolist(), rng.integers(1, 512, 19).tolist()]
        i = int(rng.integers(0, len(x)))
        ours = weighted_losses(lm, x, i, prefixes)
        expected = [reference_loss(ref, lm.config.bos_id, z, x, i) for z in prefixes]
        np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=0)


def test_same_losses_on_eight_devices(models):
    lm, _ = models
    mesh = make_mesh(2, 2, 2)
    from jtoolformer.lm import LM
    from jtoolformer.models import param_shardings

    sharded = LM(lm.config, jax.device_put(lm.params, param_shardings(lm.config, mesh)), None, mesh)
    x, prefixes = list(range(3, 30)), [[], [9, 9, 9], list(range(100, 140))]
    np.testing.assert_allclose(weighted_losses(sharded, x, 4, prefixes), weighted_losses(lm, x, 4, prefixes),
                               atol=1e-5)


def test_many_requests_packed_into_rows_match_transformers(models):
    """Requests on shared and distinct (z, x), several i each, packed several to a row, in more than
    one call: each loss is still the one computed alone."""
    lm, ref = models
    rng = np.random.default_rng(1)
    texts = [rng.integers(1, 512, n).tolist() for n in (12, 30, 7)]
    prefixes = [(), tuple(rng.integers(1, 512, 5).tolist()), tuple(rng.integers(1, 512, 11).tolist())]
    requests = [ScoreRequest(z, tuple(x), int(i)) for x in texts for z in prefixes
                for i in sorted(set(rng.integers(0, len(x), 3).tolist()))]
    scorer = Scorer(lm, max_rows=2, row_length=64, length_multiple=16)
    ours = scorer(requests)
    expected = [reference_loss(ref, lm.config.bos_id, r.prefix, r.x, r.i) for r in requests]
    np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=0)


def test_inline_requests_score_z_inserted_before_x_i(models):
    """filter_placement=inline: [BOS] x_<i z x_≥i, mixed in one call with prefixed requests on the same
    (z, x); each is the loss transformers gives on its own sequence."""
    lm, ref = models
    rng = np.random.default_rng(2)
    x = tuple(rng.integers(1, 512, 25).tolist())
    z = tuple(rng.integers(1, 512, 6).tolist())
    requests = [ScoreRequest(z, x, i, inline) for i in (1, 9, 22) for inline in (False, True)]
    ours = Scorer(lm, max_rows=2, row_length=64, length_multiple=16)(requests)
    expected = []
    for r in requests:
        if r.inline:  # the same weights over x_i.., read from the sequence with z moved in front of x_i
            seq_x = (*x[: r.i], *z, *x[r.i :])
            shifted = reference_loss(ref, lm.config.bos_id, (), seq_x, r.i + len(z))
            expected.append(shifted)
        else:
            expected.append(reference_loss(ref, lm.config.bos_id, r.prefix, r.x, r.i))
    np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=0)
    assert abs(ours[1] - ours[0]) > 1e-3  # the placements differ


def test_scorers_of_one_model_config_share_programs_and_score_their_own_params(models):
    lm, _ = models
    x, prefixes = list(range(3, 30)), [[], [9, 9, 9]]
    first = weighted_losses(lm, x, 4, prefixes)
    compiled = hidden_program._cache_size(), losses_program._cache_size()
    other = load_model(lm.config, seed=6)  # the same config, other params
    second = weighted_losses(other, x, 4, prefixes)
    assert (hidden_program._cache_size(), losses_program._cache_size()) == compiled
    assert not np.allclose(first, second, atol=1e-3)
    np.testing.assert_allclose(weighted_losses(lm, x, 4, prefixes), first, atol=1e-6)


STATED = "24 + 16 = 40 drawings, and she earned $1,200 in 3.5 weeks"


@pytest.mark.parametrize(
    ("call_input", "result", "where", "stated"),
    [
        ("24 + 16", "40", "= 40", True),  # the text's next number is the result
        ("24 + 16", "40.001", "= 40", True),  # results are rounded to 2 decimals
        ("16 - 24", "-8", "= 40", False),  # a wrong result
        ("40", "40", "= 40", False),  # computes nothing
        ("0.10", "0.1", "= 40", False),  # computes nothing, written differently
        ("1000 + 200", "1200", "$1,200", True),  # thousands separators
        ("7 / 2", "3.5", "3.5 weeks", True),
        ("24 + 16", "40", "24 + 16", False),  # the next number is 24
        ("3 * 2", "1200", "drawings", False),  # the next number is more than 20 characters away
        ("Paris", "capital of France", "= 40", True),  # non-numeric results are not checked
    ],
)
def test_states_result_needs_the_next_number_to_be_the_result(call_input, result, where, stated):
    assert states_result(call_input, result, STATED, STATED.index(where) + (2 if where.startswith("=") else 0)) is stated


def test_same_number_compares_values_not_spelling():
    assert same_number("1,200", "1200.00") and same_number("-4.5", " -4.50 ") and same_number("0.33", "0.333")
    assert not same_number("12", "21") and not same_number("12", "twelve")
