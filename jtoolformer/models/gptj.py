"""GPT-J (EleutherAI): one LayerNorm per block, attention and MLP in parallel off it, interleaved rotary
on the first rotary_dim features of each head, no q/k/v/out biases, biased fc_in/fc_out/lm_head."""

from __future__ import annotations

import flax.linen as nn
import jax

from jtoolformer.models.config import ModelConfig
from jtoolformer.models.layers import dense, self_attention

ROTARY_INTERLEAVED = True
HEAD_BIAS = True


def layer_norm(cfg: ModelConfig, name: str) -> nn.LayerNorm:
    return nn.LayerNorm(
        epsilon=cfg.norm_eps,
        dtype=cfg.dtype,
        param_dtype=cfg.param_dtype,
        scale_init=nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)),
        name=name,
    )


final_norm = layer_norm


class Block(nn.Module):
    cfg: ModelConfig

    @nn.compact
    def __call__(self, x, mask, sin, cos, cache_index, k_cache, v_cache, prefix_k=None, prefix_v=None,
                 shared_k=None, shared_v=None, prefix_rows=None):
        cfg = self.cfg
        h = layer_norm(cfg, "ln_1")(x)
        attn, new_cache = self_attention(
            h, cfg, use_bias=False, interleaved=ROTARY_INTERLEAVED, out_name="out_proj",
            mask=mask, sin=sin, cos=cos, cache_index=cache_index, k_cache=k_cache, v_cache=v_cache,
            prefix_k=prefix_k, prefix_v=prefix_v, shared_k=shared_k, shared_v=shared_v, prefix_rows=prefix_rows,
        )
        common = dict(use_bias=True, dtype=cfg.dtype, param_dtype=cfg.param_dtype)
        m = dense(cfg.d_ff, ("embed", "mlp"), name="fc_in", **common)(h)
        m = dense(cfg.d_model, ("mlp", "embed"), name="fc_out", **common)(jax.nn.gelu(m, approximate=True))
        return (x + attn + m).astype(x.dtype), new_cache


# (our param path, HF tensor name, transposed?) — "{i}" is the layer index of a stacked parameter.
HF_NAMES = (
    (("wte", "embedding"), "transformer.wte.weight", False),
    (("h", "ln_1", "scale"), "transformer.h.{i}.ln_1.weight", False),
    (("h", "ln_1", "bias"), "transformer.h.{i}.ln_1.bias", False),
    (("h", "q_proj", "kernel"), "transformer.h.{i}.attn.q_proj.weight", True),
    (("h", "k_proj", "kernel"), "transformer.h.{i}.attn.k_proj.weight", True),
    (("h", "v_proj", "kernel"), "transformer.h.{i}.attn.v_proj.weight", True),
    (("h", "out_proj", "kernel"), "transformer.h.{i}.attn.out_proj.weight", True),
    (("h", "fc_in", "kernel"), "transformer.h.{i}.mlp.fc_in.weight", True),
    (("h", "fc_in", "bias"), "transformer.h.{i}.mlp.fc_in.bias", False),
    (("h", "fc_out", "kernel"), "transformer.h.{i}.mlp.fc_out.weight", True),
    (("h", "fc_out", "bias"), "transformer.h.{i}.mlp.fc_out.bias", False),
    (("ln_f", "scale"), "transformer.ln_f.weight", False),
    (("ln_f", "bias"), "transformer.ln_f.bias", False),
    (("lm_head", "kernel"), "lm_head.weight", True),
    (("lm_head", "bias"), "lm_head.bias", False),
)

# Buffers some HF GPT-J checkpoints carry that are not parameters.
HF_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq", "embed_positions")


def config_from_hf(hf: dict) -> ModelConfig:
    act = hf.get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh"):
        raise ValueError(f"GPT-J activation {act!r} is not supported (expected gelu_new)")
    return ModelConfig(
        arch="gptj",
        vocab_size=hf["vocab_size"],
        d_model=hf["n_embd"],
        n_layers=hf["n_layer"],
        n_heads=hf["n_head"],
        d_ff=hf.get("n_inner") or 0,
        rotary_dim=hf.get("rotary_dim") or 0,
        max_positions=hf.get("n_positions", 2048),
        norm_eps=hf.get("layer_norm_epsilon", 1e-5),
        tie_embeddings=hf.get("tie_word_embeddings") or False,
        bos_id=hf.get("bos_token_id"),
        eos_id=hf.get("eos_token_id"),
    )


def config_to_hf(cfg: ModelConfig) -> dict:
    return {
        "architectures": ["GPTJForCausalLM"],
        "model_type": "gptj",
        "vocab_size": cfg.vocab_size,
        "n_embd": cfg.d_model,
        "n_layer": cfg.n_layers,
        "n_head": cfg.n_heads,
        "n_inner": cfg.d_ff,
        "rotary_dim": cfg.rotary_dim,
        "n_positions": cfg.max_positions,
        "layer_norm_epsilon": cfg.norm_eps,
        "activation_function": "gelu_new",
        "tie_word_embeddings": cfg.tie_embeddings,
        "bos_token_id": cfg.bos_id,
        "eos_token_id": cfg.eos_id,
        "torch_dtype": cfg.param_dtype,
    }
