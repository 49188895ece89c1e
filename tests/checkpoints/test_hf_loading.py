"""HF checkpoint formats (single, sharded, bf16, torch .bin), bad input, and peak memory of a load."""

import json
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from safetensors.numpy import load_file, save_file

from jtoolformer.checkpoints.hf import load_hf, save_hf
from jtoolformer.lm import load_model
from jtoolformer.sharding import make_mesh


def one_device():
    return make_mesh(devices=jax.devices()[:1])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    lm = load_model("configs/gptj_tiny.yaml", seed=2)
    d = tmp_path_factory.mktemp("tiny")
    save_hf(lm.params, lm.config, d)
    return lm, d


def same_params(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)


def test_sharded_safetensors_with_index(tiny, tmp_path):
    lm, _ = tiny
    save_hf(lm.params, lm.config, tmp_path, max_shard_bytes=200_000)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 2
    same_params(load_hf(tmp_path, make_mesh(2, 2, 2))[1], lm.params)


def test_bfloat16_and_torch_bin_checkpoints(tmp_path):
    torch.manual_seed(0)
    cfg = transformers.GPTJConfig(vocab_size=100, n_embd=32, n_layer=2, n_head=2, rotary_dim=8, n_positions=64,
                                  bos_token_id=0, eos_token_id=0)
    model = transformers.GPTJForCausalLM(cfg)
    model.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    cfg, params = load_hf(tmp_path / "bf16", one_device(), scan_layers=True)
    ref = model.transformer.h[1].attn.q_proj.weight.detach().float().numpy().T
    np.testing.assert_array_equal(np.asarray(params["h"]["q_proj"]["kernel"][1], np.float32), ref)
    # the checkpoint's dtype is the model's unless the command asks for another (--dtype)
    assert (cfg.dtype, cfg.param_dtype, params["h"]["q_proj"]["kernel"].dtype) == ("bfloat16", "bfloat16", jnp.bfloat16)
    cfg, params = load_hf(tmp_path / "bf16", one_device(), dtype="float32", param_dtype="float32")
    assert (cfg.dtype, params["h_1"]["q_proj"]["kernel"].dtype) == ("float32", jnp.float32)

    model.float().save_pretrained(tmp_path / "bin", safe_serialization=False)
    _, params = load_hf(tmp_path / "bin", one_device(), scan_layers=False)
    np.testing.assert_array_equal(np.asarray(params["h_0"]["fc_in"]["bias"]),
                                  model.transformer.h[0].mlp.fc_in.bias.detach().numpy())


def test_directory_without_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_hf(tmp_path, one_device())


def test_unsupported_model_type(tiny, tmp_path):
    _, d = tiny
    shutil.copytree(d, tmp_path, dirs_exist_ok=True)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "model_type": "bert"}))
    with pytest.raises(ValueError, match="model_type 'bert' is not supported"):
        load_hf(tmp_path, one_device())


def test_config_shape_mismatch_names_the_tensor(tiny, tmp_path):
    _, d = tiny
    shutil.copytree(d, tmp_path, dirs_exist_ok=True)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "n_inner": 128}))
    with pytest.raises(ValueError, match=r"transformer\.h\.0\.mlp\.fc_in\.weight has shape"):
        load_hf(tmp_path, one_device())


def test_missing_and_unexpected_tensors(tiny, tmp_path):
    _, d = tiny
    shutil.copytree(d, tmp_path, dirs_exist_ok=True)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "n_layer": 3}))
    with pytest.raises(ValueError, match=r"the weights hold 2 layers, but the config says n_layers=3"):
        load_hf(tmp_path, one_device())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "n_layer": 1}))
    with pytest.raises(ValueError, match=r"the weights hold 2 layers, but the config says n_layers=1"):
        load_hf(tmp_path, one_device())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "n_layer": 10**9}))  # would trace for hours
    with pytest.raises(ValueError, match=r"the weights hold 2 layers, but the config says n_layers=1000000000"):
        load_hf(tmp_path, one_device())
    weights = tmp_path / "model.safetensors"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    data = weights.read_bytes()
    weights.write_bytes(data.replace(b"transformer.h.1.ln_1.bias", b"transformer.h.1.ln_1.bia_"))
    with pytest.raises(ValueError, match=r"missing tensors \['transformer\.h\.1\.ln_1\.bias'\]"):
        load_hf(tmp_path, one_device())
    weights.write_bytes(data)
    save_file({**load_file(weights), "transformer.h.1.extra.weight": np.zeros(2, np.float32)}, weights)
    with pytest.raises(ValueError, match=r"unexpected tensors \['transformer\.h\.1\.extra\.weight'\]"):
        load_hf(tmp_path, one_device())


def test_no_weights(tiny, tmp_path):
    _, d = tiny
    shutil.copy(d / "config.json", tmp_path)
    with pytest.raises(FileNotFoundError, match="no weights in"):
        load_hf(tmp_path, one_device())


@pytest.mark.slow
def test_load_peak_memory_stays_below_1_3x_params(tmp_path):
    cfg = transformers.GPTJConfig(vocab_size=8000, n_positions=256, n_embd=1024, n_layer=10, n_head=8, rotary_dim=32,
                                  bos_token_id=0, eos_token_id=0)
    transformers.GPTJForCausalLM(cfg).save_pretrained(tmp_path)  # ~550 MB of fp32 params
    out = subprocess.run([sys.executable, "scripts/measure_load_memory.py", str(tmp_path)],
                         capture_output=True, text=True, check=True)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["params_mb"] > 300
    assert figures["ratio"] < 1.3, figures


def test_every_inference_command_takes_the_dtype():
    from jtoolformer.cli.main import build_parser

    parser = build_parser()
    for command in (["annotate", "--out", "o"], ["generate", "hi"], ["demo"],
                    ["eval", "--model", "m", "--data-dir", "d", "--out", "o"]):
        assert parser.parse_args([*command, "--dtype", "bfloat16"]).dtype == "bfloat16"
        assert parser.parse_args(command).dtype is None  # the checkpoint's own
