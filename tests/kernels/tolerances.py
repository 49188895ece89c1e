"""How close a kernel must come to its reference: within 1e-5 in float32 and 2e-2 in bfloat16, of the
largest magnitude of the reference (forward values and every gradient alike)."""

import jax.numpy as jnp
import numpy as np

TOLERANCE = {jnp.float32: 1e-5, jnp.bfloat16: 2e-2}


def assert_close(actual, expected, dtype) -> None:
    actual, expected = (np.asarray(jnp.asarray(x, jnp.float32)) for x in (actual, expected))
    assert actual.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    error = float(np.abs(actual - expected).max())
    assert error <= TOLERANCE[dtype] * scale, f"max error {error:.3g} against a scale of {scale:.3g}"
