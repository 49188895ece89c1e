"""Toolformer in JAX: language models that teach themselves to use tools."""

from jtoolformer.lm import LM, load_model

__all__ = ["LM", "load_model"]
