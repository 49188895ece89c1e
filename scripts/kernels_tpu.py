"""Both Pallas kernels compiled by Mosaic for TPU generations, beside the XLA computation they replace,
from XLA:TPU's own analysis (ahead of time on this CPU host, libtpu: `pip install -e ".[tpu]"`).

At GPT-J-6B's shapes, per device:
- vocab_logprobs: log p(target) through the output projection and its gradient in hidden and W, for
  one micro-batch of the train step (1,024 tokens, D 4,096, V 50,400), against the XLA loss (logits
  [N, V] in float32);
- prefix_decode_attention: one decode step of annotation's call sampling (16 groups of 16 rows
  continuing a 1,024-token prefix, 32-slot suffixes, 16 heads of 256), against XLA's attention over
  each row's prefix copied in front of its slots.
Each is compiled alone for one device; the figures are temporaries, flops and bytes accessed (XLA counts
a Mosaic kernel's flops and bytes from its own cost estimate).

    python scripts/kernels_tpu.py                      # v3, v4, v5e, v5p, v6e → scripts/results/kernels_tpu.json
    python scripts/kernels_tpu.py --shapes tiny --chips v5e --out /tmp/k.json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

# name → (topology, chip config) of a single-host slice; the kernels compile for its first device.
CHIPS = {"v3": ("v3:2x2", "default"), "v4": ("v4:2x2x1", "megacore"), "v5e": ("v5e:2x2", "default"),
         "v5p": ("v5p:2x2x1", "megacore"), "v6e": ("v6e:2x2", "default")}
SHAPES = {  # logprob rows N, d_model D, vocabulary V; decode: groups G, rows per group R, KV heads K, head dim, prefix P, suffix S
    "paper": {"n": 1024, "d": 4096, "v": 50400, "groups": 16, "rows": 16, "kv": 16, "head_dim": 256, "prefix": 1024,
              "suffix": 32},
    "tiny": {"n": 64, "d": 128, "v": 500, "groups": 2, "rows": 4, "kv": 2, "head_dim": 128, "prefix": 200, "suffix": 24},
}


def _device(chip: str):
    from jax.experimental import topologies

    topology, config = CHIPS[chip]
    return topologies.get_topology_desc(platform="tpu", topology_name=topology, chip_config_name=config).devices[0]


def _compiled(fn, device, *shapes) -> dict:
    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    sharding = NamedSharding(Mesh([device], ("x",)), PartitionSpec())
    args = [jax.ShapeDtypeStruct(shape, dtype, sharding=sharding) for shape, dtype in shapes]
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    seconds = time.perf_counter() - start
    memory, cost = compiled.memory_analysis(), compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return {"temp_bytes": memory.temp_size_in_bytes, "argument_bytes": memory.argument_size_in_bytes,
            "flops": cost.get("flops", 0.0), "bytes_accessed": cost.get("bytes accessed", 0.0),
            "mosaic_calls": compiled.as_text().count('custom_call_target="tpu_custom_call"'),
            "compile_s": round(seconds, 2)}


def logprobs(chip: str, s: dict) -> dict:
    """Forward and backward (d hidden, d W) of Σ log p(target), kernel against XLA."""
    import jax
    import jax.numpy as jnp

    from jtoolformer.kernels.vocab_logprobs import vocab_logprobs, vocab_logprobs_reference

    def grads(fn):
        return jax.grad(lambda h, w, b, t: fn(h, w, b, t).sum(), argnums=(0, 1))

    shapes = [((s["n"], s["d"]), jnp.bfloat16), ((s["d"], s["v"]), jnp.bfloat16), ((s["v"],), jnp.float32),
              ((s["n"],), jnp.int32)]
    device = _device(chip)
    kernel = functools.partial(vocab_logprobs, backend="tpu", interpret=False)
    return {"pallas": _compiled(grads(kernel), device, *shapes),
            "xla": _compiled(grads(vocab_logprobs_reference), device, *shapes)}


def decode_attention(chip: str, s: dict) -> dict:
    import jax.numpy as jnp

    from jtoolformer.kernels.prefix_decode_attention import (prefix_decode_attention,
                                                             prefix_decode_attention_reference)

    b, kv, d, bf = s["groups"] * s["rows"], s["kv"], s["head_dim"], jnp.bfloat16
    shapes = [((b, kv, d), bf), ((b, kv, d, s["suffix"]), bf), ((b, kv, s["suffix"], d), bf),
              ((b, s["suffix"]), jnp.bool_), ((s["groups"], kv, d, s["prefix"]), bf),
              ((s["groups"], kv, s["prefix"], d), bf), ((b, s["prefix"]), jnp.bool_)]
    device = _device(chip)
    kernel = functools.partial(prefix_decode_attention, backend="tpu", interpret=False)
    return {"pallas": _compiled(kernel, device, *shapes),
            "xla": _compiled(prefix_decode_attention_reference, device, *shapes)}


def main(argv: list[str] | None = None) -> dict:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")  # the TPU is only compiled for
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")  # libtpu's per-host lock would refuse a second process
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", choices=sorted(SHAPES), default="paper")
    parser.add_argument("--chips", nargs="+", choices=sorted(CHIPS), default=list(CHIPS))
    parser.add_argument("--out", type=Path, default=Path("scripts/results/kernels_tpu.json"))
    args = parser.parse_args(argv)
    shapes = SHAPES[args.shapes]
    result = {"shapes": shapes, "chips": {}}
    for chip in args.chips:
        entry = {}
        for name, fn in (("vocab_logprobs", logprobs), ("prefix_decode_attention", decode_attention)):
            try:
                entry[name] = fn(chip, shapes)
            except Exception as error:  # noqa: BLE001 - a kernel Mosaic refuses on a chip is a result
                entry[name] = {"error": f"{type(error).__name__}: {str(error)[:2000]}"}
            print(chip, name, json.dumps(entry[name])[:300], file=sys.stderr, flush=True)
        result["chips"][chip] = entry
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
