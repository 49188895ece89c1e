"""The optimizer against torch.optim.AdamW with torch's clipping, and the schedule's shape."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from flax.traverse_util import flatten_dict

from jtoolformer.models import abstract_params
from jtoolformer.train.config import OptimConfig
from jtoolformer.train.optim import decay_mask, learning_rate_schedule, make_optimizer


def test_schedule_warms_up_from_the_first_update_then_decays_to_the_end_rate():
    cfg = OptimConfig(learning_rate=1.0, warmup_fraction=0.2, end_learning_rate=0.0)
    rates = [float(learning_rate_schedule(cfg, 10)(k)) for k in range(10)]
    assert rates == pytest.approx([0.5, 1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8, 0.0])
    paper = OptimConfig(learning_rate=1e-5, warmup_fraction=0.1)
    schedule = learning_rate_schedule(paper, 2000)
    assert float(schedule(199)) == pytest.approx(1e-5) and float(schedule(99)) == pytest.approx(0.5e-5)


def test_decay_applies_to_kernels_and_embeddings_only(tiny_cfg):
    mask = flatten_dict(decay_mask(abstract_params(tiny_cfg)))
    decayed = {"/".join(path) for path, on in mask.items() if on}
    assert decayed == {"wte/embedding", "lm_head/kernel"} | {
        f"h/{name}/kernel" for name in ("q_proj", "k_proj", "v_proj", "out_proj", "fc_in", "fc_out")}


def test_adamw_step_matches_torch():
    cfg = OptimConfig(learning_rate=1e-2, warmup_fraction=0.25, end_learning_rate=1e-3, b1=0.8, b2=0.99,
                      eps=1e-6, weight_decay=0.1, clip_norm=1.0)
    steps = 8
    rng = np.random.default_rng(0)
    params = {"h": {"fc_in": {"kernel": rng.normal(size=(2, 4, 3)), "bias": rng.normal(size=(2, 3))},
                    "ln_1": {"scale": rng.normal(size=(2, 4))}},
              "wte": {"embedding": rng.normal(size=(5, 4))}}
    params = jax.tree.map(lambda x: x.astype(np.float32), params)
    # Gradient norms around 3 (clipped) and 0.3 (not) alternate.
    grads = [jax.tree.map(lambda x: (3.0 if k % 2 else 0.3) * rng.normal(size=x.shape).astype(np.float32)
                          / 3.6, params) for k in range(steps)]

    tx, schedule = make_optimizer(cfg, steps)
    ours, state = params, tx.init(params)
    for g in grads:
        updates, state = tx.update(g, state, ours)
        ours = optax.apply_updates(ours, updates)

    flat = flatten_dict(params)
    tensors = {k: torch.tensor(np.array(v), requires_grad=True) for k, v in flat.items()}
    decayed = flatten_dict(decay_mask(params))
    groups = [{"params": [t for k, t in tensors.items() if decayed[k] == on], "weight_decay": wd}
              for on, wd in ((True, cfg.weight_decay), (False, 0.0))]
    opt = torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(cfg.b1, cfg.b2), eps=cfg.eps)
    for k, g in enumerate(grads):
        for key, grad in flatten_dict(g).items():
            tensors[key].grad = torch.tensor(np.array(grad))
        torch.nn.utils.clip_grad_norm_(list(tensors.values()), cfg.clip_norm)
        for group in opt.param_groups:
            group["lr"] = float(schedule(k))
        opt.step()

    for key, value in flatten_dict(ours).items():
        np.testing.assert_allclose(np.asarray(value), tensors[key].detach().numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg="/".join(key))
    assert not np.allclose(flatten_dict(ours)[("h", "fc_in", "kernel")], flat[("h", "fc_in", "kernel")])


def test_bfloat16_first_moment():
    tx, _ = make_optimizer(OptimConfig(mu_dtype="bfloat16"), 10)
    state = tx.init({"w": jnp.zeros((3,), jnp.float32)})
    assert optax.tree_utils.tree_get(state, "mu")["w"].dtype == jnp.bfloat16
    assert optax.tree_utils.tree_get(state, "nu")["w"].dtype == jnp.float32
