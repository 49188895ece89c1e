"""Llama family (Llama 2/3-style, SmolLM2, …): RMSNorm, SwiGLU MLP, grouped-query attention,
rotate_half rotary with configurable theta, optional tied embeddings."""

from __future__ import annotations

import flax.linen as nn
import jax

from jtoolformer.models.config import ModelConfig
from jtoolformer.models.layers import dense, self_attention

ROTARY_INTERLEAVED = False
HEAD_BIAS = False


def rms_norm(cfg: ModelConfig, name: str) -> nn.RMSNorm:
    return nn.RMSNorm(
        epsilon=cfg.norm_eps,
        dtype=cfg.dtype,
        param_dtype=cfg.param_dtype,
        scale_init=nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
        name=name,
    )


final_norm = rms_norm


class Block(nn.Module):
    cfg: ModelConfig

    @nn.compact
    def __call__(self, x, mask, sin, cos, cache_index, k_cache, v_cache, prefix_k=None, prefix_v=None,
                 shared_k=None, shared_v=None, prefix_rows=None):
        cfg = self.cfg
        attn, new_cache = self_attention(
            rms_norm(cfg, "input_layernorm")(x), cfg, use_bias=cfg.attention_bias,
            interleaved=ROTARY_INTERLEAVED, out_name="o_proj",
            mask=mask, sin=sin, cos=cos, cache_index=cache_index, k_cache=k_cache, v_cache=v_cache,
            prefix_k=prefix_k, prefix_v=prefix_v, shared_k=shared_k, shared_v=shared_v, prefix_rows=prefix_rows,
        )
        x = (x + attn).astype(x.dtype)
        h = rms_norm(cfg, "post_attention_layernorm")(x)
        common = dict(use_bias=cfg.mlp_bias, dtype=cfg.dtype, param_dtype=cfg.param_dtype)
        gate = dense(cfg.d_ff, ("embed", "mlp"), name="gate_proj", **common)(h)
        up = dense(cfg.d_ff, ("embed", "mlp"), name="up_proj", **common)(h)
        down = dense(cfg.d_model, ("mlp", "embed"), name="down_proj", **common)(jax.nn.silu(gate) * up)
        return (x + down).astype(x.dtype), new_cache


_LAYER = "model.layers.{i}."
_PROJECTIONS = [("self_attn", p) for p in ("q_proj", "k_proj", "v_proj", "o_proj")] + [
    ("mlp", p) for p in ("gate_proj", "up_proj", "down_proj")
]
# (our param path, HF tensor name, transposed?) — "{i}" is the layer index of a stacked parameter.
# Biases and lm_head appear only in configs that have them; the loader uses the entries the params hold.
HF_NAMES = (
    (("wte", "embedding"), "model.embed_tokens.weight", False),
    (("h", "input_layernorm", "scale"), _LAYER + "input_layernorm.weight", False),
    (("h", "post_attention_layernorm", "scale"), _LAYER + "post_attention_layernorm.weight", False),
    *((("h", p, "kernel"), f"{_LAYER}{group}.{p}.weight", True) for group, p in _PROJECTIONS),
    *((("h", p, "bias"), f"{_LAYER}{group}.{p}.bias", False) for group, p in _PROJECTIONS),
    (("ln_f", "scale"), "model.norm.weight", False),
    (("lm_head", "kernel"), "lm_head.weight", True),
)

HF_IGNORED_SUFFIXES = (".rotary_emb.inv_freq",)


def _rope_theta(hf: dict) -> float:
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind != "default":
        raise ValueError(f"Llama rope scaling {kind!r} is not supported (only plain rotary)")
    return float(rope.get("rope_theta", hf.get("rope_theta", 10000.0)))


def config_from_hf(hf: dict) -> ModelConfig:
    act = hf.get("hidden_act", "silu")
    if act != "silu":
        raise ValueError(f"Llama activation {act!r} is not supported (expected silu)")
    return ModelConfig(
        arch="llama",
        vocab_size=hf["vocab_size"],
        d_model=hf["hidden_size"],
        n_layers=hf["num_hidden_layers"],
        n_heads=hf["num_attention_heads"],
        n_kv_heads=hf.get("num_key_value_heads") or 0,
        head_dim=hf.get("head_dim") or 0,
        d_ff=hf["intermediate_size"],
        rope_theta=_rope_theta(hf),
        max_positions=hf.get("max_position_embeddings", 2048),
        norm_eps=hf.get("rms_norm_eps", 1e-6),
        tie_embeddings=hf.get("tie_word_embeddings") or False,
        attention_bias=hf.get("attention_bias") or False,
        mlp_bias=hf.get("mlp_bias") or False,
        bos_id=hf.get("bos_token_id"),
        eos_id=hf.get("eos_token_id") if not isinstance(hf.get("eos_token_id"), list) else hf["eos_token_id"][0],
    )


def config_to_hf(cfg: ModelConfig) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.d_ff,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads,
        "head_dim": cfg.head_dim,
        "max_position_embeddings": cfg.max_positions,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,
        "hidden_act": "silu",
        "tie_word_embeddings": cfg.tie_embeddings,
        "attention_bias": cfg.attention_bias,
        "mlp_bias": cfg.mlp_bias,
        "bos_token_id": cfg.bos_id,
        "eos_token_id": cfg.eos_id,
        "torch_dtype": cfg.param_dtype,
    }
