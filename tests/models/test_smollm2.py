"""The embedded default (SmolLM2-135M-Instruct GGUF) against transformers loading the same file."""

import numpy as np
import pytest
import torch
import transformers

import jtoolformer
from jtoolformer.checkpoints.gguf import default_gguf_path

PROMPTS = ["The capital of France is", "def add(a, b):\n    return", "Out of 1400 participants, 400 passed"]


@pytest.fixture(scope="module")
def lm():
    return jtoolformer.load_model()


@pytest.mark.slow
def test_logits_match_transformers_on_the_same_gguf(lm):
    path = default_gguf_path()
    ref = transformers.LlamaForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    for prompt in PROMPTS:
        ids = [lm.tokenizer.encode_prompt(prompt)]
        with torch.no_grad():
            expected = ref(torch.tensor(ids)).logits.numpy()
        np.testing.assert_allclose(lm.logits(np.array(ids)), expected, atol=1e-3, rtol=0)


def test_greedy_generation_names_paris(lm):
    assert "Paris" in lm.generate(["The capital of France is"], max_new_tokens=8)[0]


def test_stop_strings_cut_the_text(lm):
    free = lm.generate(["Count: 1, 2, 3,"], max_new_tokens=12)[0]
    stopped = lm.generate(["Count: 1, 2, 3,"], max_new_tokens=12, stop=[" 5"])[0]
    assert " 5" in free and stopped == free[: free.index(" 5")]
