"""Llama (GQA, tied embeddings) against transformers' PyTorch LlamaForCausalLM."""

import jax
import numpy as np
import pytest
import torch
import transformers

from jtoolformer.checkpoints.hf import load_hf, save_hf
from jtoolformer.models import DecoderLM
from jtoolformer.sharding import make_mesh

LAYOUTS = pytest.mark.parametrize("scan_layers", [True, False], ids=["scanned", "unrolled"])


@pytest.fixture(scope="module", params=[True, False], ids=["tied", "untied"])
def hf_dir(request, tmp_path_factory):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=300, hidden_size=48, intermediate_size=96, num_hidden_layers=3,
                                   num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=128,
                                   rope_theta=50000.0, tie_word_embeddings=request.param)
    model = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.normal_(1.0, 0.3)
    d = tmp_path_factory.mktemp("llama")
    model.save_pretrained(d)
    return d, model


def logits(cfg, params, ids):
    pos = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)
    return np.asarray(DecoderLM(cfg).apply({"params": params}, ids, pos)[0])


@LAYOUTS
def test_logits_and_export_match_transformers(hf_dir, tmp_path, scan_layers):
    d, model = hf_dir
    ids = np.random.default_rng(0).integers(0, 300, (2, 37))
    cfg, params = load_hf(d, make_mesh(devices=jax.devices()[:1]), scan_layers=scan_layers)
    assert cfg.n_kv_heads == 2 and cfg.rope_theta == 50000.0
    ours = logits(cfg, params, ids)
    with torch.no_grad():
        ref = model(torch.tensor(ids)).logits.numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)

    save_hf(params, cfg, tmp_path)
    reloaded = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        ref2 = reloaded(torch.tensor(ids)).logits.numpy()
    np.testing.assert_allclose(ref2, ours, atol=1e-5, rtol=0)
