"""The harness's Scorer and Generator for a real jtoolformer LM, and an end-to-end `eval` run."""

import json

import numpy as np
import pytest

from jtoolformer.cli.main import main
from jtoolformer.evaluate.model import LMScorer


def reference_nll(lm, text):
    ids = [lm.tokenizer.bos_id, *lm.tokenizer.encode(text)]
    logits = lm.logits(np.array([ids]))[0].astype(np.float64)
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(-1, keepdims=True)
    return -sum(logp[t, ids[t + 1]] for t in range(len(ids) - 1)), len(ids) - 1


def test_scorer_sums_token_nlls(smollm):
    texts = ["The capital of France is Paris.", "Out of 1400 participants, 400 passed the test."]
    for (nll, n), text in zip(LMScorer(smollm)(texts), texts):
        ref, ref_n = reference_nll(smollm, text)
        assert n == ref_n and nll == pytest.approx(ref, abs=1e-2)


def test_windows_score_every_token_once(smollm):
    text = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
    (_, n_full), = LMScorer(smollm)([text])
    (_, n_windowed), = LMScorer(smollm, window=8)([text])
    assert n_full == n_windowed == len(smollm.tokenizer.encode(text))


@pytest.mark.slow
def test_eval_command_on_fixtures(smollm, monkeypatch, tmp_path):
    def load_model(model, mesh):  # the test process's SmolLM2, already loaded (and its programs compiled)
        assert (model, mesh) == ("smollm2-135m", None)
        return smollm

    monkeypatch.setattr("jtoolformer.evaluate.model.load_model", load_model)
    assert main(["eval", "--model", "smollm2-135m", "--tasks", "math,perplexity", "--limit", "2",
                 "--data-dir", "tests/evaluate/fixtures", "--out", str(tmp_path)]) in (0, None)
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert (tmp_path / "results.png").stat().st_size > 1000 and (tmp_path / "results.md").exists()
    math = [r for r in results if r["family"] == "math"]
    assert {r["task"] for r in math} == {"asdiv", "svamp", "mawps"} and all(r["n"] == 2 for r in math)
    assert {r["mode"] for r in math} == {"disabled", "enabled"}
    perplexities = [r["value"] for r in results if r["metric"] == "perplexity"]
    assert perplexities and all(1.0 < p < 1e4 for p in perplexities)  # a real LM on English text
