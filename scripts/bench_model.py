"""Forward and cached-decode speed of jtoolformer's models beside transformers (PyTorch) in the same run.

Writes JSON (--out): per model, tokens/s for a 512-token forward and for greedy decoding with a KV
cache, the ratio to transformers, and the rooflines both sides are held to: the forward's FLOP/s as a
fraction of this machine's measured matmul peak (JAX, in the compute dtype), and decoding against the
bound set by streaming the weights once per token at the measured memory bandwidth.

    python scripts/bench_model.py --out scripts/results/bench_model.json [--models gptj_tiny,gptj_125m,smollm2]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import torch
import transformers

from jtoolformer import load_model
from jtoolformer.checkpoints.gguf import default_gguf_path
from jtoolformer.checkpoints.hf import save_hf
from jtoolformer.models import ModelConfig


def best_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_peak_flops(dtype=jnp.float32, n: int = 2048) -> float:
    a = jnp.ones((n, n), dtype)
    f = jax.jit(lambda x: jnp.dot(x, x, preferred_element_type=jnp.float32))
    return 2 * n**3 / best_time(lambda: f(a).block_until_ready(), 5)


def memory_bandwidth(n_bytes: int = 1 << 30) -> float:
    """Bytes/s a float32 matrix-vector product streams from a matrix larger than the caches: what bounds
    batch-1 decoding, which reads every weight once per token."""
    cols = 1 << 15
    w = jnp.ones((n_bytes // 4 // cols, cols), jnp.float32)
    x = jnp.ones((1, w.shape[0]), jnp.float32)
    f = jax.jit(lambda x, w: x @ w)
    return w.nbytes / best_time(lambda: f(x, w).block_until_ready(), 5)


def decode_bytes_per_token(cfg: ModelConfig) -> int:
    """Weight bytes one batch-1 decode step reads: all of them but the embedding table, of which it
    reads one row (unless the table is also the output head)."""
    embedding = 0 if cfg.tie_embeddings else cfg.vocab_size * cfg.d_model
    return (cfg.n_params - embedding) * jnp.dtype(cfg.param_dtype).itemsize


def forward_flops(cfg: ModelConfig, t: int) -> float:
    """Matmul FLOPs of one forward over t tokens (attention scores counted in full, as computed)."""
    d, hd = cfg.d_model, cfg.head_dim
    per_layer = 2 * t * d * hd * (2 * cfg.n_heads + 2 * cfg.n_kv_heads)
    per_layer += 2 * t * d * cfg.d_ff * (3 if cfg.arch == "llama" else 2)
    per_layer += 4 * t * t * cfg.n_heads * hd
    return cfg.n_layers * per_layer + 2 * t * d * cfg.vocab_size


def bench_pair(name: str, lm, ref, seq: int, new_tokens: int, repeats: int, peaks: dict, bandwidth: float) -> dict:
    seq = min(seq, lm.config.max_positions - new_tokens)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, min(lm.config.vocab_size, 32000), (1, seq))
    jax_fwd = best_time(lambda: lm.logits(ids), repeats)
    with torch.no_grad():
        torch_ids = torch.tensor(ids)
        torch_fwd = best_time(lambda: ref(torch_ids).logits, repeats)

    prompt = ids[:, :16]
    jax_dec = best_time(lambda: lm.decoder.generate(lm.params, prompt.tolist(), new_tokens), repeats)
    with torch.no_grad():
        gen = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, use_cache=True,
                   pad_token_id=0)
        torch_dec = best_time(lambda: ref.generate(torch.tensor(prompt), **gen), repeats)
    flops = forward_flops(lm.config, seq)
    decode_bound = bandwidth / decode_bytes_per_token(lm.config)  # tokens/s
    result = {
        "seq": seq,
        "forward_tokens_per_s": seq / jax_fwd,
        "forward_tokens_per_s_transformers": seq / torch_fwd,
        "forward_speedup": torch_fwd / jax_fwd,
        "forward_fraction_of_matmul_peak": flops / jax_fwd / peaks[lm.config.dtype],
        "decode_tokens_per_s": new_tokens / jax_dec,
        "decode_tokens_per_s_transformers": new_tokens / torch_dec,
        "decode_speedup": torch_dec / jax_dec,
        # Rooflines: what no implementation of this config at this precision can beat on this machine.
        "forward_fraction_of_matmul_peak_transformers": flops / torch_fwd / peaks[lm.config.dtype],
        "decode_bound_tokens_per_s": decode_bound,
        "decode_fraction_of_bound": new_tokens / jax_dec / decode_bound,
        "decode_speedup_at_bound": decode_bound / (new_tokens / torch_dec),
        "params": lm.config.n_params,
    }
    print(name, json.dumps(result, indent=1))
    return result


TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def gptj_pair(config_path: str, workdir: Path, dtype: str):
    lm = load_model(config_path, dtype=dtype)
    save_hf(lm.params, lm.config, workdir)
    ref = transformers.GPTJForCausalLM.from_pretrained(workdir, dtype=TORCH_DTYPES[dtype]).eval()
    return lm, ref


def smollm2_pair(dtype: str):
    path = default_gguf_path()
    ref = transformers.LlamaForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    return load_model(dtype=dtype), ref.to(TORCH_DTYPES[dtype])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="scripts/results/bench_model.json")
    parser.add_argument("--models", default="gptj_tiny,gptj_125m,smollm2,gptj_125m@bfloat16,smollm2@bfloat16",
                        help="configs/<name>.yaml or smollm2, each optionally @bfloat16 (compute dtype of both sides)")
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    peaks = {"float32": matmul_peak_flops(jnp.float32), "bfloat16": matmul_peak_flops(jnp.bfloat16)}
    bandwidth = memory_bandwidth()
    results = {"machine": {"processor": platform.processor() or platform.machine(),
                           "jax_devices": [str(d) for d in jax.devices()], "torch_threads": torch.get_num_threads(),
                           "jax_matmul_peak_gflops": {k: v / 1e9 for k, v in peaks.items()},
                           "memory_bandwidth_gb_per_s": bandwidth / 1e9},
               "seq": args.seq, "new_tokens": args.new_tokens, "models": {}}
    for name in args.models.split(","):
        model, _, dtype = name.partition("@")
        dtype = dtype or "float32"
        with tempfile.TemporaryDirectory() as tmp:
            lm, ref = smollm2_pair(dtype) if model == "smollm2" else gptj_pair(f"configs/{model}.yaml", Path(tmp), dtype)
            results["models"][name] = bench_pair(name, lm, ref, args.seq, args.new_tokens, args.repeats, peaks,
                                                       bandwidth)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
