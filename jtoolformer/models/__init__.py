"""Decoder LMs: build, describe (logical axes), initialise params directly with their shardings, and run
(`forward`, the one way every stage applies a model)."""

from __future__ import annotations

from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from jtoolformer.models.config import ModelConfig, load_model_config
from jtoolformer.models.transformer import ARCH_MODULES, DecoderLM, KVCache
from jtoolformer.sharding import activation_mesh, tree_shardings

__all__ = ["ModelConfig", "load_model_config", "DecoderLM", "KVCache", "ARCH_MODULES",
           "abstract_params", "param_logical_axes", "param_shardings", "init_params", "forward", "project"]


def _init(model: DecoderLM, key: jax.Array):
    tokens = jnp.zeros((1, 1), jnp.int32)
    return model.init(key, tokens, tokens)["params"]


def _boxed_abstract(cfg: ModelConfig):
    return jax.eval_shape(partial(_init, DecoderLM(cfg)), jax.random.key(0))


def abstract_params(cfg: ModelConfig):
    """The params tree as ShapeDtypeStructs (nothing allocated)."""
    return nn.unbox(_boxed_abstract(cfg))


def param_logical_axes(cfg: ModelConfig):
    """A tree like the params whose leaves are tuples of logical axis names."""
    return jax.tree.map(
        lambda box: tuple(box.names),
        _boxed_abstract(cfg),
        is_leaf=lambda x: isinstance(x, nn.Partitioned),
    )


def param_shardings(cfg: ModelConfig, mesh: Mesh):
    return tree_shardings(param_logical_axes(cfg), abstract_params(cfg), mesh)


def init_params(cfg: ModelConfig, key: jax.Array, mesh: Mesh):
    """Random params created directly on their shards (no full copy on any one device)."""
    model = DecoderLM(cfg)
    init = jax.jit(lambda k: nn.unbox(_init(model, k)), out_shardings=param_shardings(cfg, mesh))
    return init(key)


def forward(cfg: ModelConfig, mesh: Mesh | None, params, tokens: jax.Array, positions: jax.Array, *,
            rngs: dict | None = None, **kwargs) -> tuple[jax.Array, KVCache | None]:
    """The model on tokens, positions [B, T], its activations pinned to `mesh` by their logical names:
    (logits [B, T, V] float32, or the final hidden states with return_hidden=True; the cache). `kwargs`
    are DecoderLM's (segment_ids, cache, token_valid, return_hidden); `rngs`: flax RNG streams for modules
    that draw them. Pure: call it inside jit."""
    with activation_mesh(mesh):
        return DecoderLM(cfg).apply({"params": params}, tokens, positions, rngs=rngs, **kwargs)


def project(cfg: ModelConfig, mesh: Mesh | None, params, hidden: jax.Array) -> jax.Array:
    """Final hidden states [..., D] → logits [..., V] float32 (the output head `forward` applies)."""
    with activation_mesh(mesh):
        return DecoderLM(cfg).apply({"params": params}, hidden, method=DecoderLM.project)
