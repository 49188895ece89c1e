"""The best checkpoint by held-out perplexity is found again after the run is reopened."""

import jax.numpy as jnp
import numpy as np

from jtoolformer.train.checkpointing import Checkpoints
from jtoolformer.train.step import TrainState


def state(step: int) -> TrainState:
    return TrainState(jnp.int32(step), {"w": jnp.full((3,), float(step))}, {"mu": jnp.zeros(3)},
                      jnp.zeros(2, jnp.uint32))


def test_best_survives_a_restart_and_a_tie_names_the_kept_step(tmp_path):
    checkpoints = Checkpoints(tmp_path, async_save=False)
    for step, ppl in ((1, 5.0), (2, 6.0), (3, None), (4, 5.0)):
        checkpoints.save(state(step), {"position": step}, ppl)
    checkpoints.wait()
    assert checkpoints.best() == (4, 5.0)
    checkpoints.close()

    reopened = Checkpoints(tmp_path, async_save=False)
    step, ppl = reopened.best()
    assert (step, ppl) == (4, 5.0) and step in reopened.manager.all_steps()
    params = reopened.restore_params(step, {"w": jnp.zeros(3)})
    np.testing.assert_array_equal(params["w"], np.full(3, 4.0))
    reopened.close()
