"""Per-device memory of every compiled program of the recipe, for a model too large for this machine.

Each stage is lowered and compiled with abstract params and inputs (ShapeDtypeStructs carrying their
shardings: nothing is allocated) on a simulated mesh of N CPU devices, one subprocess per N (the
device count is fixed when JAX starts). `compiled.memory_analysis()` gives each device's argument,
output, temporary and aliased (donated) bytes. Stages: the train step (with the XLA loss and with the
fused log-prob kernel, interpreted); annotation's positions pass
(stage 1), the decode loop of call sampling (stage 2) and the filter (stage 4); and
generation's prefill and decode chunk. XLA:CPU's buffer assignment only approximates a TPU's or a
GPU's: their layouts pad differently and their compilers fuse and rematerialise differently.

    python scripts/plan_memory.py        # GPT-J-6B on 1, 4, 8 and 32 devices (an H100; v4-8; v3-8, v5e-8; v3-32)
    python scripts/plan_memory.py --config configs/gptj_tiny.yaml --sizes tiny --out /tmp/plan.json
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

GIB = 2**30


@dataclass(frozen=True)
class Sizes:
    """The shapes each stage is compiled for."""

    train_batch: int  # sequences per optimizer step (Toolformer §4: 128)
    train_seq_len: int
    head_tokens: int  # the tool's few-shot prompt before "Input:"
    tail_width: int  # "Input: x / Output:" and x again, padded
    docs: int  # documents per annotation batch
    calls_per_doc: int  # rows of call sampling per document (k positions × m samples, bounded)
    call_tokens: int
    filter_rows: int
    filter_row_length: int
    filter_requests: int
    prompts: int  # generation
    prompt_tokens: int
    new_tokens: int
    decode_chunk: int


SIZES = {
    "paper": Sizes(train_batch=128, train_seq_len=1024, head_tokens=512, tail_width=1024, docs=16,
                   calls_per_doc=16, call_tokens=32, filter_rows=32, filter_row_length=256, filter_requests=256,
                   prompts=32, prompt_tokens=512, new_tokens=256, decode_chunk=16),
    "tiny": Sizes(train_batch=16, train_seq_len=32, head_tokens=24, tail_width=32, docs=8, calls_per_doc=4,
                  call_tokens=8, filter_rows=8, filter_row_length=32, filter_requests=16, prompts=8,
                  prompt_tokens=16, new_tokens=16, decode_chunk=4),
}


def _byte_tokenizer():
    """One token per byte: prompts of an exact length, with the "[" and "]" tokens calls need."""
    from tokenizers import Tokenizer as HFTokenizer, decoders, models, pre_tokenizers

    from jtoolformer.checkpoints.tokenizer import Tokenizer

    hf = HFTokenizer(models.BPE({c: i for i, c in enumerate(pre_tokenizers.ByteLevel.alphabet())}, []))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    return Tokenizer(hf, bos_id=0, eos_id=0)


def _analysis(lowered) -> dict:
    start = time.perf_counter()
    compiled = lowered.compile()
    m = compiled.memory_analysis()
    out = {"argument_bytes": m.argument_size_in_bytes, "output_bytes": m.output_size_in_bytes,
           "temp_bytes": m.temp_size_in_bytes, "alias_bytes": m.alias_size_in_bytes,
           "compile_s": round(time.perf_counter() - start, 1)}
    out["peak_bytes"] = out["argument_bytes"] + out["output_bytes"] + out["temp_bytes"] - out["alias_bytes"]
    out["peak_gib"] = round(out["peak_bytes"] / GIB, 3)
    return out


def _struct(shape, dtype, sharding=None):
    import jax

    return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)


def _train(config: str, sizes: Sizes, devices: int) -> dict:
    """The train step with the XLA loss, and with the fused log-prob kernel (interpreted on the CPU,
    so its figures are rougher still)."""
    import jax.numpy as jnp

    from jtoolformer.models import load_model_config
    from jtoolformer.sharding import batch_sharding, make_mesh
    from jtoolformer.train.config import OptimConfig
    from jtoolformer.train.step import Trainer, train_step_program

    mesh = make_mesh(data=1, fsdp=devices, tensor=1)
    micro = max(1, sizes.train_batch // devices)  # one sequence per device per micro-batch
    shape = (sizes.train_batch, sizes.train_seq_len)
    batch = {name: _struct(shape, jnp.float32 if name == "loss_mask" else jnp.int32, batch_sharding(mesh, shape))
             for name in ("inputs", "targets", "positions", "segment_ids", "loss_mask")}
    out = {}
    for stage, impl in (("train_step", "xla"), ("train_step_fused_logprobs", "pallas")):
        cfg = load_model_config(config, dtype="bfloat16", param_dtype="float32", remat=True, scan_layers=True,
                                logprob_impl=impl)
        trainer = Trainer(cfg, mesh, OptimConfig(mu_dtype="bfloat16"), steps=1000, micro_batches=micro)
        out[stage] = {**_analysis(train_step_program.lower(trainer, trainer.abstract_state(), batch)), "mesh": dict(mesh.shape),
                      "precision": "bf16 compute, fp32 params, fp32 Adam nu, bf16 Adam mu, FSDP, remat",
                      "micro_batches": micro, "logprob_impl": impl}
    return out


def _inference_lm(config: str, devices: int):
    """An LM whose params are ShapeDtypeStructs, bf16, tensor-parallel over up to 8 devices."""
    import jax

    from jtoolformer.lm import LM
    from jtoolformer.models import abstract_params, load_model_config, param_shardings
    from jtoolformer.sharding import make_mesh

    cfg = load_model_config(config, dtype="bfloat16", param_dtype="bfloat16", scan_layers=True)
    tensor = min(8, math.gcd(devices, cfg.n_heads))
    mesh = make_mesh(data=devices // tensor, fsdp=1, tensor=tensor)
    params = jax.tree.map(lambda x, s: _struct(x.shape, x.dtype, s), abstract_params(cfg), param_shardings(cfg, mesh))
    return LM(cfg, params, _byte_tokenizer(), mesh)


def _annotation(lm, sizes: Sizes) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jtoolformer.annotate.candidates import SENTINEL, CandidateSampler
    from jtoolformer.annotate.filter import SPAN, Scorer, score_program
    from jtoolformer.models import KVCache
    from jtoolformer.shapes import padded_rows
    from jtoolformer.sharding import batch_sharding

    mesh, cfg = lm.mesh, lm.config
    prompt = "h" * (sizes.head_tokens - 1) + "Input: " + SENTINEL + "\nOutput:"
    sampler = CandidateSampler(lm, prompt, max_call_tokens=sizes.call_tokens)
    head_len = len(sampler.head)
    ones = jnp.zeros((1, head_len), jnp.int32)
    head = jax.eval_shape(lambda p: sampler._prefill_head(p, ones, ones, KVCache.zeros(cfg, 1, head_len)), lm.params)
    rows = padded_rows(sizes.docs, mesh)
    tails = (rows, sizes.tail_width)
    t_int, t_bool = (_struct(tails, d, batch_sharding(mesh, tails)) for d in (jnp.int32, jnp.bool_))
    out = {"annotate_positions": _analysis(sampler._tails.lower(lm.params, head, t_int, t_bool))}
    tail_cache = jax.eval_shape(sampler._tails, lm.params, head, t_int, t_bool)[0]
    call_rows = rows * sizes.calls_per_doc
    vec = lambda dtype: _struct((call_rows,), dtype, batch_sharding(mesh, (call_rows,)))  # noqa: E731
    state = jax.eval_shape(functools.partial(sampler._start_impl, n_steps=sizes.call_tokens),
                           tail_cache.valid, _struct((rows,), jnp.int32), vec(jnp.int32))
    keys = jax.eval_shape(lambda: jax.random.split(jax.random.key(0), call_rows))
    forced = (call_rows, 1 + len(sampler.call_head))
    out["annotate_sampling_decode"] = _analysis(sampler._decode.lower(
        lm.params, head, tail_cache, state, vec(jnp.bool_), keys, vec(jnp.int32),
        _struct(forced, jnp.int32, batch_sharding(mesh, forced)), np.int32(sizes.call_tokens)))
    scorer = Scorer(lm, max_rows=sizes.filter_rows, row_length=sizes.filter_row_length)
    packed = (padded_rows(sizes.filter_rows, mesh), sizes.filter_row_length)
    placed = [_struct(packed, jnp.int32, batch_sharding(mesh, packed)) for _ in range(3)]
    req = (padded_rows(sizes.filter_requests, mesh), SPAN)
    out["annotate_filter"] = _analysis(score_program.lower(
        scorer.model, lm.params, *placed, _struct(req, jnp.int32), _struct(req, jnp.int32), _struct(req, jnp.float32)))
    return out


def _generation(lm, sizes: Sizes) -> dict:
    import jax
    import jax.numpy as jnp

    from jtoolformer.generate.decoder import DecodeState
    from jtoolformer.generate.sampling import Sampling
    from jtoolformer.models import KVCache
    from jtoolformer.shapes import bucket, padded_rows
    from jtoolformer.sharding import batch_sharding

    mesh, decoder = lm.mesh, lm.decoder
    rows = padded_rows(sizes.prompts, mesh)
    shape = (rows, sizes.prompt_tokens)
    tokens, valid = (_struct(shape, d, batch_sharding(mesh, shape)) for d in (jnp.int32, jnp.bool_))
    length = sizes.prompt_tokens + bucket(sizes.new_tokens)
    cache = jax.eval_shape(lambda: KVCache.zeros(lm.config, rows, length))
    out = {"generate_prefill": _analysis(decoder._prefill.lower(lm.params, tokens, valid, cache))}
    logits, cache, positions = jax.eval_shape(decoder._prefill_impl, lm.params, tokens, valid, cache)
    state = DecodeState(cache, logits, positions, _struct((rows,), jnp.bool_),
                        jax.eval_shape(lambda: jax.random.key(0)))
    out["generate_decode"] = _analysis(decoder._chunk.lower(lm.params, state, _struct((1,), jnp.int32),
                                                            n_steps=sizes.decode_chunk, sampling=Sampling()))
    return out


def plan(config: str, sizes: Sizes, devices: int) -> dict:
    """Every stage compiled on this process's first `devices` devices (JAX must already see them)."""
    import jax

    if len(jax.devices()) < devices:
        raise RuntimeError(f"JAX sees {len(jax.devices())} devices, the plan needs {devices}")
    lm = _inference_lm(config, devices)
    stages = _train(config, sizes, devices)
    inference = {"mesh": dict(lm.mesh.shape), "precision": "bf16 params and compute, tensor parallel"}
    for name, result in {**_annotation(lm, sizes), **_generation(lm, sizes)}.items():
        stages[name] = {**result, **inference}
    return stages


def run_in_subprocess(config: str, sizes: str, devices: int) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu", JTOOLFORMER_COMPILATION_CACHE="0")
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={devices}"])
    done = subprocess.run([sys.executable, __file__, "--worker", "--config", config, "--sizes", sizes,
                           "--devices", str(devices)], env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"planning on {devices} devices failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/gptj_6b.yaml")
    parser.add_argument("--sizes", choices=sorted(SIZES), default="paper")
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 4, 8, 32])
    parser.add_argument("--out", type=Path, default=Path("scripts/results/plan_memory.json"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(plan(args.config, SIZES[args.sizes], args.devices[0])))
        return {}
    result = {
        "config": args.config,
        "sizes": dataclasses.asdict(SIZES[args.sizes]),
        "note": "XLA:CPU memory analysis of programs compiled for simulated CPU devices; it approximates "
                "what a TPU or GPU compiler assigns",
        "per_device": {str(n): run_in_subprocess(args.config, args.sizes, n) for n in args.devices},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
