"""The jitted, sharded train and eval steps and the state they carry.

Params and both Adam moments are split by the logical-axis rules (the moments' shardings are read off
`jax.eval_shape` of the optimizer's init, so each follows its param); the state is donated to the step.
The global batch is cut into micro-batches that a `lax.scan` runs one after another, summing float32
gradients; the loss is the mean over the real (loss-mask) tokens of the whole global batch, so any
number of micro-batches gives the same step. Gradients are taken with respect to the params cast to
the compute dtype (the all-gathers then move compute-dtype weights); the master params, the gradient
sum and the optimizer stay float32.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jtoolformer.losses import output_head, token_logprobs
from jtoolformer.models import ModelConfig, abstract_params, forward, param_shardings
from jtoolformer.sharding import named_sharding
from jtoolformer.train.config import OptimConfig
from jtoolformer.train.optim import make_optimizer

F32 = jnp.float32


@flax.struct.dataclass
class TrainState:
    step: jax.Array  # int32 []: optimizer updates done
    params: Any
    opt_state: Any
    rng: jax.Array  # uint32 raw key data, split once per step


def _cast_floats(tree, dtype):
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


@dataclass(frozen=True)
class Trainer:
    """Train and eval steps for one model config on one mesh; `steps` shapes the learning-rate schedule.

    Hashable: its programs are jitted with the trainer as a static argument, so equal trainers (a
    notebook's repeated runs) share what was compiled."""

    model_cfg: ModelConfig
    mesh: Mesh
    optim: OptimConfig
    steps: int
    micro_batches: int

    @functools.cached_property
    def _optimizer(self) -> tuple[optax.GradientTransformation, optax.Schedule]:
        return make_optimizer(self.optim, self.steps)

    @property
    def tx(self) -> optax.GradientTransformation:
        return self._optimizer[0]

    @property
    def schedule(self) -> optax.Schedule:
        return self._optimizer[1]

    @functools.cached_property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec())

    def step(self, state: TrainState, batch) -> tuple[TrainState, dict[str, jax.Array]]:
        """One optimizer update (the state is donated) and its metrics."""
        return train_step_program(self, state, batch)

    def eval_sums(self, params, batch) -> tuple[jax.Array, jax.Array]:
        """(sum of the masked token cross-entropies, number of masked tokens) of `batch`, float32."""
        return _eval_sums_program(self, params, batch)

    # -- state ---------------------------------------------------------------------------------------
    @functools.cached_property
    def state_shardings(self) -> TrainState:
        params = param_shardings(self.model_cfg, self.mesh)
        opt_shapes = jax.eval_shape(self.tx.init, abstract_params(self.model_cfg))
        opt = optax.tree_map_params(self.tx, lambda _, s: s, opt_shapes, params,
                                    transform_non_params=lambda _: self.replicated)
        return TrainState(self.replicated, params, opt, self.replicated)

    def abstract_state(self) -> TrainState:
        """The state as ShapeDtypeStructs carrying their target shardings (what a restore fills in)."""
        shapes = jax.eval_shape(self._init_state, abstract_params(self.model_cfg), 0)
        return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                            shapes, self.state_shardings)

    def _init_state(self, params, seed) -> TrainState:
        rng = jax.random.key_data(jax.random.key(seed))
        return TrainState(jnp.zeros((), jnp.int32), params, self.tx.init(params), rng)

    def init_state(self, params, seed: int) -> TrainState:
        """A fresh state around `params`, placed on this mesh first. Params already placed there are
        donated: the state takes over their buffers rather than holding a second copy."""
        params = jax.device_put(params, self.state_shardings.params)
        return _init_program(self, params, seed)

    # -- losses --------------------------------------------------------------------------------------
    def _sums(self, params, batch, rng=None) -> tuple[jax.Array, jax.Array]:
        """(sum of the masked token cross-entropies, number of masked tokens), float32. The loss takes
        the final hidden states, so neither implementation keeps [tokens, V] logits for the backward
        pass: the fused kernel never forms them, the XLA one recomputes them a vocabulary chunk at a
        time (jtoolformer.losses)."""
        out, _ = forward(self.model_cfg, self.mesh, params, batch["inputs"], batch["positions"],
                         segment_ids=batch["segment_ids"], rngs=None if rng is None else {"dropout": rng},
                         return_hidden=True)
        w, b = output_head(params, self.model_cfg)
        ce = -token_logprobs(out, w, b, batch["targets"], impl=self.model_cfg.logprob_impl, mesh=self.mesh)
        mask = batch["loss_mask"].astype(F32)
        return jnp.sum(ce * mask), jnp.sum(mask)

    def _micro_batches(self, batch):
        """[G, T] → [A, G/A, T]; micro-batch j takes rows j, j+A, j+2A, … so each one spans every
        device's rows of the batch."""
        a = self.micro_batches
        rows = batch["inputs"].shape[0]
        batch_devices = self.mesh.shape["data"] * self.mesh.shape["fsdp"]
        if rows % (a * batch_devices):
            raise ValueError(f"a batch of {rows} rows cannot be cut into {a} micro-batches that are each a "
                             f"multiple of the mesh's data × fsdp = {batch_devices} devices")

        def split(x):
            g, t = x.shape
            x = x.reshape(g // a, a, t).swapaxes(0, 1)
            return jax.lax.with_sharding_constraint(x, named_sharding((None, "batch", None), x.shape, self.mesh))

        return jax.tree.map(split, batch)

    def loss_and_grads(self, params, batch, key: jax.Array) -> tuple[jax.Array, Any]:
        """Mean loss over the real tokens of `batch` and its float32 gradient, accumulated over micro-batches."""
        compute_params = _cast_floats(params, self.model_cfg.dtype)
        micro = self._micro_batches(batch)
        keys = jax.random.split(key, self.micro_batches)

        def accumulate(carry, xs):
            loss_sum, grad_sum = carry
            mb, key = xs
            value, grads = jax.value_and_grad(lambda p: self._sums(p, mb, key)[0])(compute_params)
            grad_sum = jax.tree.map(lambda s, g: s + g.astype(F32), grad_sum, grads)
            return (loss_sum + value, grad_sum), None

        zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, F32), params)
        (loss_sum, grad_sum), _ = jax.lax.scan(accumulate, (jnp.zeros((), F32), zeros), (micro, keys))
        tokens = jnp.maximum(jnp.sum(batch["loss_mask"].astype(F32)), 1.0)
        return loss_sum / tokens, jax.tree.map(lambda g: g / tokens, grad_sum)

    # -- the step ------------------------------------------------------------------------------------
    def _step(self, state: TrainState, batch) -> tuple[TrainState, dict[str, jax.Array]]:
        key, step_key = jax.random.split(jax.random.wrap_key_data(state.rng))
        loss, grads = self.loss_and_grads(state.params, batch, step_key)
        updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            "loss": loss,
            "grad_norm": optax.tree.norm(grads),
            "learning_rate": self.schedule(state.step),
            "loss_tokens": jnp.sum(batch["loss_mask"].astype(F32)),
        }
        new_state = TrainState(state.step + 1, params, opt_state, jax.random.key_data(key))
        return new_state, metrics


def _sharded_step(trainer: Trainer, state: TrainState, batch) -> tuple[TrainState, dict[str, jax.Array]]:
    state, metrics = trainer._step(state, batch)
    return (jax.lax.with_sharding_constraint(state, trainer.state_shardings),
            jax.lax.with_sharding_constraint(metrics, trainer.replicated))


def _sharded_sums(trainer: Trainer, params, batch) -> tuple[jax.Array, jax.Array]:
    return jax.lax.with_sharding_constraint(trainer._sums(params, batch), trainer.replicated)


def _sharded_init(trainer: Trainer, params, seed) -> TrainState:
    return jax.lax.with_sharding_constraint(trainer._init_state(params, seed), trainer.state_shardings)


train_step_program = jax.jit(_sharded_step, static_argnums=0, donate_argnums=1)
_eval_sums_program = jax.jit(_sharded_sums, static_argnums=0)
_init_program = jax.jit(_sharded_init, static_argnums=0, donate_argnums=1)
