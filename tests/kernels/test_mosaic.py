"""Both Pallas kernels compile through Mosaic for TPU topologies (scripts/kernels_tpu.py's tiny mode), and
the dispatch picks by the mesh's device platform, not by the CPU this runs on."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from jax.experimental import topologies
from jax.sharding import Mesh

from jtoolformer.kernels import dispatch, prefix_decode_attention, vocab_logprobs
from jtoolformer.losses import AUTO_KERNEL_ON

REPO = Path(__file__).resolve().parents[2]


def _mesh(topology: str) -> Mesh:
    devices = topologies.get_topology_desc(platform="tpu", topology_name=topology).devices
    return Mesh(np.array(devices), ("x",))


def test_both_kernels_compile_for_tpus_that_mosaic_supports(tmp_path):
    spec = importlib.util.spec_from_file_location("kernels_tpu", REPO / "scripts" / "kernels_tpu.py")
    script = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = script
    spec.loader.exec_module(script)
    out = tmp_path / "k.json"
    script.main(["--shapes", "tiny", "--chips", "v3", "v5e", "--out", str(out)])
    chips = json.loads(out.read_text())["chips"]
    for kernel in ("vocab_logprobs", "prefix_decode_attention"):
        assert chips["v5e"][kernel]["pallas"]["mosaic_calls"] > 0
        assert chips["v5e"][kernel]["xla"]["mosaic_calls"] == 0
        assert "Mosaic" in chips["v3"][kernel]["error"]


def test_auto_picks_by_the_mesh_platform():
    v5e, v3 = _mesh("v5e:2x2"), _mesh("v3:2x2")
    assert dispatch.platform(v5e) == "tpu" and dispatch.platform(v3) == "tpu-v3" and dispatch.platform(None) == "cpu"
    check = prefix_decode_attention.self_check  # cannot run for a TPU that is only compiled for: not run
    assert dispatch.resolve_impl("auto", "decode attention", check, (256, "bfloat16", 1), mesh=v5e) == "pallas"
    assert dispatch.resolve_impl("auto", "decode attention", check, (256, "bfloat16", 1), mesh=v3) == "xla"
    assert dispatch.resolve_impl("auto", "decode attention", check, (256, "bfloat16", 1)) == "xla"  # this CPU
    # the fused log-probs did not earn their place on a TPU (README): auto keeps XLA there
    assert dispatch.resolve_impl("auto", "token_logprobs", vocab_logprobs.self_check, (128, "bfloat16"), mesh=v5e,
                                 auto_pallas_on=AUTO_KERNEL_ON) == "xla"
    assert dispatch.kernel_backend(dispatch.platform(v5e)) == ("tpu", False)
    assert dispatch.kernel_backend("cpu") == ("tpu", True)
    with pytest.raises(ValueError, match="xla"):
        dispatch.kernel_backend("tpu-v3")
