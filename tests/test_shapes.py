"""Padded shapes: how many sizes a varying batch compiles."""

import jax
import pytest

from jtoolformer.sharding import make_mesh
from jtoolformer.shapes import coarse_rows, geometric_bucket


@pytest.mark.parametrize("data, top, expected, sizes", [
    (1, 16, {1: 1, 2: 4, 4: 4, 5: 16, 16: 16}, {1, 4, 16}),
    (1, 12, {3: 4, 5: 12, 12: 12}, {1, 4, 12}),
    (8, 16, {1: 8, 4: 8, 5: 16, 16: 16}, {8, 16}),
])
def test_coarse_rows_pads_to_powers_of_four_up_to_the_top(data, top, expected, sizes):
    mesh = make_mesh(data=data, devices=jax.devices()[:data])
    assert {n: coarse_rows(n, mesh, top) for n in expected} == expected
    assert {coarse_rows(n, mesh, top) for n in range(1, top + 1)} == sizes
    assert len(sizes) < len({geometric_bucket(n) for n in range(1, top + 1)})


@pytest.mark.parametrize("n", [0, 17])
def test_coarse_rows_rejects_a_count_outside_one_to_the_top(n):
    with pytest.raises(ValueError, match="expected 1 to 16"):
        coarse_rows(n, make_mesh(data=1, devices=jax.devices()[:1]), 16)
