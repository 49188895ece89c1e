"""The accelerator benchmark of the kernels runs end to end in its tiny mode (kernels interpreted on
the CPU), so it is ready whenever a GPU is lent."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_kernels_gpu.py"


@pytest.mark.slow
def test_tiny_benchmark_writes_matching_results(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_kernels_gpu", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--tiny", "--repeats", "1", "--out", str(tmp_path / "k.json")])
    result = json.loads((tmp_path / "k.json").read_text())
    assert result["interpret"] and result["dtype"] == "bfloat16"
    logprobs, attention = result["vocab_logprobs_fwd_bwd"], result["prefix_decode_attention"]
    assert logprobs["max_abs_diff_pallas_vs_full_logits"] < 2e-2 and attention["max_abs_diff"] < 2e-2
    for entry in (logprobs["pallas"], logprobs["xla_full_logits"], logprobs["xla_chunked"], attention["pallas"],
                  attention["xla"]):
        assert entry["ms"] > 0 and entry["argument_bytes"] > 0
