"""Decoder LMs: build, describe (logical axes) and initialise params directly with their shardings."""

from __future__ import annotations

from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from jtoolformer.models.config import ModelConfig, load_model_config
from jtoolformer.models.transformer import ARCH_MODULES, DecoderLM, KVCache
from jtoolformer.sharding import tree_shardings

__all__ = ["ModelConfig", "load_model_config", "DecoderLM", "KVCache", "ARCH_MODULES",
           "abstract_params", "param_logical_axes", "param_shardings", "init_params"]


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
