"""SmolLM2's tokenizer (the model is tests/conftest.py's), and a tiny random GPT-J over it whose output-head
bias steers which tokens win."""

from collections.abc import Mapping

import jax
import numpy as np
import pytest

from jtoolformer import load_model
from jtoolformer.lm import LM
from jtoolformer.models import ModelConfig


@pytest.fixture(scope="session")
def tokenizer(smollm):
    return smollm.tokenizer  # SmolLM2's byte-level BPE: " [" and "[" are different tokens


@pytest.fixture(scope="session")
def tiny_lm(tokenizer):
    cfg = ModelConfig(arch="gptj", vocab_size=tokenizer.vocab_size, d_model=32, n_layers=2, n_heads=2,
                      rotary_dim=8, max_positions=512, bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id)
    base = load_model(cfg, seed=0)

    def make(bias: Mapping[int, float] | None = None) -> LM:
        """The same random model, with `bias` added to the logits of the given token ids."""
        values = np.zeros(cfg.vocab_size, np.float32)
        for token, value in (bias or {}).items():
            values[token] = value
        head = base.params["lm_head"]
        params = dict(base.params, lm_head=dict(head, bias=jax.device_put(values, head["bias"].sharding)))
        return LM(cfg, params, tokenizer, base.mesh)

    return make
