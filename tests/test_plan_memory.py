"""scripts/plan_memory.py's tiny mode: every stage of the recipe compiles for a TPU topology with XLA:TPU
(libtpu, ahead of time on this CPU), the fused loss through Mosaic, and the figures hold together (the
train state is what its dtypes make it, FSDP splits it over the devices, the step donates it)."""

import importlib.util
import json
import sys
from pathlib import Path

import jax
import pytest

from jtoolformer.models import abstract_params, load_model_config

REPO = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_every_stage_compiles_for_a_tpu_topology(tmp_path):
    plan = _script("plan_memory")
    out = tmp_path / "plan.json"
    plan.main(["--config", str(REPO / "configs/gptj_tiny.yaml"), "--sizes", "tiny", "--targets", "v5e-8",
               "--costs", "v5e-8", "--out", str(out)])
    target = json.loads(out.read_text())["targets"]["v5e-8"]
    assert target["devices"] == 8 and target["device_kind"] == "TPU v5 lite"
    assert target["usable_hbm_gib"] == pytest.approx(15.75)  # XLA:TPU's own limit for a v5e chip's 16 GiB
    stages = target["stages"]
    assert set(stages) == set(plan.STAGES)
    for s in stages.values():
        assert s["peak_bytes"] == s["argument_bytes"] + s["output_bytes"] + s["temp_bytes"] - s["alias_bytes"] > 0
        assert s["fits"] and s["roofline"]["seconds"] > 0
        # the roofline's program has no loops: at least the work of the runtime's, whose loops count once
        assert s["cost_program"]["flops"] >= s["flops"] > 0
    assert stages["train_step_fused_logprobs"]["mosaic_calls"] > 0 and stages["train_step"]["mosaic_calls"] == 0
    params = sum(x.size for x in jax.tree.leaves(abstract_params(load_model_config(REPO / "configs/gptj_tiny.yaml"))))
    sizes = plan.SIZES["tiny"]
    batch = 5 * 4 * sizes.train_batch * sizes.train_seq_len
    train = stages["train_step"]
    # float32 params and Adam nu, bfloat16 Adam mu, split over 8 devices (fsdp 2 × tensor 4); TPU layouts
    # pad the tiny model's small arrays to (8, 128) tiles
    assert (10 * params + batch) / 8 <= train["argument_bytes"] < 0.3 * (10 * params + batch)
    assert train["alias_bytes"] > 0.9 * 10 * params / 8  # the state is donated
    assert train["collective_bytes"] > 0
    assert set(target["predicted"]) == {"train_step_tokens_per_s", "train_step_fused_logprobs_tokens_per_s",
                                        "annotate_documents_per_s", "generate_tokens_per_s"}


def test_megacore_and_multi_host_topologies():
    plan = _script("plan_memory")
    v4 = plan.TARGETS["v4-8"].devices()
    assert len(v4) == 4 and v4[0].num_cores == 2  # a v4-8 is 4 chips, each one megacore device
    pod = plan.TARGETS["v4-32"].devices()
    assert len(pod) == 16 and len({d.process_index for d in pod}) == 4
