"""GPT-J against transformers' PyTorch GPTJForCausalLM: load, logits, export, reload."""

import jax
import numpy as np
import pytest
import torch
import transformers

from jtoolformer.checkpoints.hf import load_hf, save_hf
from jtoolformer.models import DecoderLM
from jtoolformer.sharding import make_mesh

LAYOUTS = pytest.mark.parametrize("scan_layers", [True, False], ids=["scanned", "unrolled"])


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = transformers.GPTJConfig(vocab_size=300, n_positions=128, n_embd=64, n_layer=3, n_head=4,
                                  rotary_dim=8, n_inner=None)
    model = transformers.GPTJForCausalLM(cfg).eval()
    with torch.no_grad():  # HF initialises biases and norms to constants; randomise so they matter
        for name, p in model.named_parameters():
            if name.endswith("bias") or "ln" in name:
                p.normal_(0, 0.5 if "ln" in name and name.endswith("weight") else 0.1)
    d = tmp_path_factory.mktemp("gptj")
    model.save_pretrained(d)
    return d, model


def torch_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor(ids)).logits.float().numpy()


def jax_logits(cfg, params, ids):
    ids = np.asarray(ids)
    pos = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)
    return np.asarray(DecoderLM(cfg).apply({"params": params}, ids, pos)[0])


@LAYOUTS
def test_logits_match_transformers(hf_dir, scan_layers):
    d, model = hf_dir
    ids = np.random.default_rng(0).integers(0, 300, (2, 40))
    cfg, params = load_hf(d, make_mesh(devices=jax.devices()[:1]), scan_layers=scan_layers)
    assert cfg.rotary_dim == 8 and cfg.head_dim == 16
    np.testing.assert_allclose(jax_logits(cfg, params, ids), torch_logits(model, ids), atol=1e-4, rtol=0)


@LAYOUTS
def test_export_reloads_in_transformers(hf_dir, tmp_path, scan_layers):
    d, _ = hf_dir
    cfg, params = load_hf(d, make_mesh(devices=jax.devices()[:1]), scan_layers=scan_layers)
    save_hf(params, cfg, tmp_path)
    reloaded = transformers.GPTJForCausalLM.from_pretrained(tmp_path).eval()
    ids = np.random.default_rng(1).integers(0, 300, (2, 33))
    np.testing.assert_allclose(torch_logits(reloaded, ids), jax_logits(cfg, params, ids), atol=1e-5, rtol=0)
