"""scripts/plan_memory.py on the tiny GPT-J: every stage compiles on simulated meshes and the figures
hold together (the train state is what its dtypes make it, and FSDP splits it)."""

import importlib.util
import json
import sys
from pathlib import Path

import jax
import pytest

from jtoolformer.models import abstract_params, load_model_config

REPO = Path(__file__).resolve().parents[1]
STAGES = {"train_step", "train_step_fused_logprobs", "annotate_positions", "annotate_sampling_decode",
          "annotate_filter", "generate_prefill", "generate_decode"}


@pytest.mark.slow
def test_plan_on_one_and_two_devices(tmp_path):
    spec = importlib.util.spec_from_file_location("plan_memory", REPO / "scripts" / "plan_memory.py")
    plan = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = plan  # its dataclass looks its module up
    spec.loader.exec_module(plan)
    out = tmp_path / "plan.json"
    plan.main(["--config", str(REPO / "configs/gptj_tiny.yaml"), "--sizes", "tiny", "--devices", "1", "2",
               "--out", str(out)])
    per_device = json.loads(out.read_text())["per_device"]
    assert set(per_device) == {"1", "2"}
    for stages in per_device.values():
        assert set(stages) == STAGES
        for s in stages.values():
            assert s["peak_bytes"] == s["argument_bytes"] + s["output_bytes"] + s["temp_bytes"] - s["alias_bytes"] > 0
    # one device holds the whole state: float32 params and Adam nu, bfloat16 Adam mu, plus the batch
    params = sum(x.size for x in jax.tree.leaves(abstract_params(load_model_config(REPO / "configs/gptj_tiny.yaml"))))
    sizes = plan.SIZES["tiny"]
    batch = 5 * 4 * sizes.train_batch * sizes.train_seq_len
    one, two = per_device["1"]["train_step"], per_device["2"]["train_step"]
    assert one["argument_bytes"] == pytest.approx(10 * params + batch, rel=0.01)
    assert two["argument_bytes"] < 0.6 * one["argument_bytes"]  # FSDP: each device keeps half the state
    assert one["alias_bytes"] > 0.9 * 10 * params  # the state is donated
