"""Meshes of 8 simulated devices give the same logits as one device, with params really split."""

import jax
import numpy as np
import pytest

from jtoolformer.checkpoints.hf import load_hf, save_hf
from jtoolformer.lm import LM, load_model
from jax.sharding import PartitionSpec

from jtoolformer.models import param_shardings
from jtoolformer.sharding import make_mesh, spec_for


@pytest.fixture(scope="module")
def reference():
    lm = load_model("configs/gptj_tiny.yaml", seed=1)
    ids = np.random.default_rng(0).integers(0, 512, (8, 24))
    return lm, ids, lm.logits(ids)


@pytest.mark.parametrize("scan_layers", [True, False], ids=["scanned", "unrolled"])
@pytest.mark.parametrize("shape", [(8, 1, 1), (2, 2, 2), (1, 2, 4)])
def test_mesh_gives_single_device_logits(reference, tmp_path, shape, scan_layers):
    lm, ids, expected = reference
    save_hf(lm.params, lm.config, tmp_path)
    mesh = make_mesh(*shape)
    cfg, params = load_hf(tmp_path, mesh, scan_layers=scan_layers)
    sharded = LM(cfg, params, None, mesh)
    np.testing.assert_allclose(sharded.logits(ids), expected, atol=1e-5, rtol=0)

    _, fsdp, tensor = shape
    layer = params["h"] if scan_layers else params["h_1"]
    stacked = (2,) if scan_layers else ()  # [layers, embed, heads] or one layer's [embed, heads]
    q = layer["q_proj"]["kernel"]
    assert q.addressable_shards[0].data.shape == (*stacked, 64 // fsdp, 64 // tensor)
    fc = layer["fc_in"]["kernel"]
    assert fc.addressable_shards[0].data.shape == (*stacked, 64 // fsdp, 256 // tensor)
    assert params["wte"]["embedding"].addressable_shards[0].data.shape == (512 // tensor, 64 // fsdp)
    assert len({d for s in q.addressable_shards for d in [s.device]}) == 8


def test_generation_on_a_mesh_matches_one_device(reference):
    lm, _, _ = reference
    prompts = [[1, 2, 3], [9, 8, 7, 6, 5]]
    expected = lm.decoder.generate(lm.params, prompts, max_new_tokens=6)
    mesh = make_mesh(2, 2, 2)
    params = jax.device_put(lm.params, param_shardings(lm.config, mesh))
    assert LM(lm.config, params, None, mesh).decoder.generate(params, prompts, max_new_tokens=6) == expected


def test_indivisible_axes_fall_back_to_replication():
    mesh = make_mesh(1, 2, 4)
    assert spec_for(("kv_heads",), (3,), mesh) == PartitionSpec(None)
    assert spec_for(("embed", "kv_heads"), (6, 8), mesh) == PartitionSpec("fsdp", "tensor")
    assert spec_for(("embed", "mlp"), (5, 12), mesh) == PartitionSpec(None, "tensor")
    assert spec_for(("batch", None), (8, 7), make_mesh(2, 4, 1)) == PartitionSpec(("data", "fsdp"), None)
    assert spec_for(("batch", None), (2, 7), make_mesh(2, 4, 1)) == PartitionSpec("data", None)


def test_mesh_must_divide_the_devices():
    with pytest.raises(ValueError, match="does not equal the 8 devices"):
        make_mesh(3, 1, 1)
    with pytest.raises(ValueError, match="do not divide"):
        make_mesh(-1, 3, 1)
