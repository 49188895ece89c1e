"""The Pallas kernels against XLA, side by side in one run, at GPT-J-6B's shapes (random weights, bf16).

- Fused log-probs (forward + backward: what the train loss and the filter run) at V = 50400, D = 4096:
  the kernel, XLA with the full [N, V] logits, and XLA's vocabulary-chunked scan.
- Decode attention over group-shared prefixes (16 heads of 256, one few-shot head and document per
  group, a short suffix of call tokens per row): the kernel against the model's XLA attention.
Each is timed (median of repeated runs after a warm-up) and its compiled memory read from
`memory_analysis()` (plus the device's peak where it reports one); the outputs are compared.

    python scripts/bench_kernels_gpu.py                 # on a GPU (or TPU): writes scripts/results/bench_kernels_gpu.json
    python scripts/bench_kernels_gpu.py --tiny --out /tmp/k.json   # tiny shapes, kernels interpreted on the CPU
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from jtoolformer.kernels.dispatch import kernel_backend
from jtoolformer.kernels.prefix_decode_attention import prefix_decode_attention
from jtoolformer.kernels.vocab_logprobs import vocab_logprobs, vocab_logprobs_reference
from jtoolformer.losses import token_logprobs
from jtoolformer.models.layers import attention

SHAPES = {
    "gptj": {"tokens": 8192, "d_model": 4096, "vocab": 50400, "rows": 256, "groups": 16, "kv_heads": 16,
             "heads": 16, "head_dim": 256, "prefix": 1536, "suffix": 32},
    "tiny": {"tokens": 40, "d_model": 32, "vocab": 1000, "rows": 8, "groups": 2, "kv_heads": 2, "heads": 4,
             "head_dim": 16, "prefix": 37, "suffix": 9},
}


def _measure(fn, args, repeats: int) -> dict:
    compiled = jax.jit(fn).lower(*args).compile()
    memory = compiled.memory_analysis()
    out = jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    stats = jax.devices()[0].memory_stats() or {}
    return {"ms": round(1e3 * statistics.median(times), 3), "temp_bytes": memory.temp_size_in_bytes,
            "argument_bytes": memory.argument_size_in_bytes, "output_bytes": memory.output_size_in_bytes,
            "device_peak_bytes": stats.get("peak_bytes_in_use")}, out


def _max_diff(a, b) -> float:
    return max(float(jnp.max(jnp.abs(x.astype(jnp.float32) - y.astype(jnp.float32))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def bench_vocab_logprobs(s: dict, repeats: int) -> dict:
    backend, interpret = kernel_backend()
    keys = jax.random.split(jax.random.key(0), 4)
    h = jax.random.normal(keys[0], (s["tokens"], s["d_model"]), jnp.bfloat16)
    w = (jax.random.normal(keys[1], (s["d_model"], s["vocab"])) * 0.02).astype(jnp.bfloat16)
    b = jax.random.normal(keys[2], (s["vocab"],), jnp.bfloat16)
    t = jax.random.randint(keys[3], (s["tokens"],), 0, s["vocab"])

    def loss_and_grads(logprobs):
        return jax.value_and_grad(lambda h, w, b: -logprobs(h, w, b, t).mean(), argnums=(0, 1, 2))

    impls = {
        "pallas": lambda h, w, b, t: vocab_logprobs(h, w, b, t, backend=backend, interpret=interpret),
        "xla_full_logits": vocab_logprobs_reference,
        "xla_chunked": lambda h, w, b, t: token_logprobs(h, w, b, t, impl="xla"),
    }
    result, outputs = {}, {}
    for name, fn in impls.items():
        result[name], outputs[name] = _measure(loss_and_grads(fn), (h, w, b), repeats)
    result["pallas_speedup_over_full_logits"] = round(result["xla_full_logits"]["ms"] / result["pallas"]["ms"], 3)
    result["max_abs_diff_pallas_vs_full_logits"] = _max_diff(outputs["pallas"], outputs["xla_full_logits"])
    return result


def bench_decode_attention(s: dict, repeats: int) -> dict:
    backend, interpret = kernel_backend()
    keys = jax.random.split(jax.random.key(1), 5)
    rows, kv, d = s["rows"], s["kv_heads"], s["head_dim"]
    normal = lambda key, shape: jax.random.normal(key, shape, jnp.bfloat16)  # noqa: E731
    q = normal(keys[0], (rows, s["heads"], d))
    k, v = normal(keys[1], (rows, kv, d, s["suffix"])), normal(keys[2], (rows, kv, s["suffix"], d))
    pk, pv = normal(keys[3], (s["groups"], kv, d, s["prefix"])), normal(keys[4], (s["groups"], kv, s["prefix"], d))
    cut = jnp.arange(rows) * s["prefix"] // rows + 1  # each row sees its prefix up to its own position
    pm = jnp.arange(s["prefix"])[None] < cut[:, None]
    mask = jnp.arange(s["suffix"])[None] < (jnp.arange(rows) % s["suffix"] + 1)[:, None]

    def kernel(q, k, v, pk, pv):
        return prefix_decode_attention(q, k, v, mask, pk, pv, pm, backend=backend, interpret=interpret)

    def xla(q, k, v, pk, pv):
        out = attention(q[:, None], k, v, jnp.concatenate([pm, mask], axis=1)[:, None], pk, pv)
        return out.reshape(q.shape)

    result, outputs = {}, {}
    for name, fn in {"pallas": kernel, "xla": xla}.items():
        result[name], outputs[name] = _measure(fn, (q, k, v, pk, pv), repeats)
    result["pallas_speedup"] = round(result["xla"]["ms"] / result["pallas"]["ms"], 3)
    result["max_abs_diff"] = _max_diff(outputs["pallas"], outputs["xla"])
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (the kernels interpreted on a CPU)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("scripts/results/bench_kernels_gpu.json"))
    args = parser.parse_args(argv)
    shapes = SHAPES["tiny" if args.tiny else "gptj"]
    backend, interpret = kernel_backend()
    result = {
        "device": str(jax.devices()[0].device_kind), "platform": jax.default_backend(), "host": platform.node(),
        "jax": jax.__version__, "kernel_variant": backend, "interpret": interpret, "dtype": "bfloat16",
        "shapes": shapes,
        "vocab_logprobs_fwd_bwd": bench_vocab_logprobs(shapes, args.repeats),
        "prefix_decode_attention": bench_decode_attention(shapes, args.repeats),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
