"""Pins the sign and pairing of both rotary conventions on hand-computable vectors."""

import numpy as np

from jtoolformer.models.layers import apply_rotary, rotary_angles


def rotate(x, position, rotary_dim, interleaved):
    sin, cos = rotary_angles(np.array([[position]]), rotary_dim, 10000.0)
    return np.asarray(apply_rotary(np.asarray(x, np.float32)[None, None, None], sin, cos, interleaved=interleaved))[0, 0, 0]


def test_interleaved_rotates_adjacent_pairs_counterclockwise():
    # position 1, rotary_dim 4: frequencies 1 and 1e-2; pairs (x0, x1) and (x2, x3); x4, x5 untouched.
    x = [1.0, 0.0, 0.0, 1.0, 7.0, 8.0]
    out = rotate(x, 1, 4, interleaved=True)
    c, s = np.cos(1.0), np.sin(1.0)
    c2, s2 = np.cos(0.01), np.sin(0.01)
    np.testing.assert_allclose(out, [c, s, -s2, c2, 7.0, 8.0], atol=1e-6)


def test_half_rotates_first_half_against_second_half():
    # pairs (x0, x2) and (x1, x3)
    x = [1.0, 0.0, 0.0, 1.0]
    out = rotate(x, 1, 4, interleaved=False)
    c, s = np.cos(1.0), np.sin(1.0)
    c2, s2 = np.cos(0.01), np.sin(0.01)
    np.testing.assert_allclose(out, [c, -s2, s, c2], atol=1e-6)


def test_rotation_makes_dot_products_depend_on_distance_only():
    rng = np.random.default_rng(0)
    q, k = rng.normal(size=8), rng.normal(size=8)
    for interleaved in (True, False):
        d1 = rotate(q, 5, 8, interleaved) @ rotate(k, 2, 8, interleaved)
        d2 = rotate(q, 13, 8, interleaved) @ rotate(k, 10, 8, interleaved)
        np.testing.assert_allclose(d1, d2, rtol=1e-5)
