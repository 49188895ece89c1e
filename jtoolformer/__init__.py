"""Toolformer in JAX: language models that teach themselves to use tools.

`load_model` and `LM` are imported on first use, so importing a subpackage (e.g. the tools, on a
host that must call jax.distributed.initialize first) does not import JAX.
"""

from typing import TYPE_CHECKING

__all__ = ["LM", "load_model"]

if TYPE_CHECKING:
    from jtoolformer.lm import LM, load_model


def __getattr__(name: str):
    if name in __all__:
        from jtoolformer import lm

        return getattr(lm, name)
    raise AttributeError(f"module 'jtoolformer' has no attribute {name!r}")
