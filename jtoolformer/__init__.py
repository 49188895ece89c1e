"""Toolformer in JAX."""
