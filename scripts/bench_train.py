"""Training throughput: our jitted train step against `transformers` PyTorch training of the same model.

For each model config: tokens/s and MFU (6·N·tokens/s against the machine's measured matmul peak,
the better of an XLA and a PyTorch float32 matmul) over a few timed AdamW steps after a warm-up step,
same batch, sequence length and dtype (float32) for both. Writes JSON.

    python scripts/bench_train.py --out bench_train.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import numpy as np
import torch
import transformers

from jtoolformer.models import ModelConfig, init_params, load_model_config
from jtoolformer.models.gptj import config_to_hf
from jtoolformer.sharding import make_mesh
from jtoolformer.train.batches import to_global
from jtoolformer.train.config import OptimConfig
from jtoolformer.train.flops import measure_peak_flops, train_flops_per_token
from jtoolformer.train.step import Trainer

OPTIM = OptimConfig(learning_rate=1e-5, warmup_fraction=0.0, weight_decay=0.0, clip_norm=1.0)


def torch_matmul_flops(size: int = 2048, min_seconds: float = 1.0) -> float:
    a = torch.ones(size, size)
    a @ a
    start, reps = time.perf_counter(), 0
    while time.perf_counter() - start < min_seconds:
        a @ a
        reps += 1
    return 2 * size**3 * reps / (time.perf_counter() - start)


def random_batch(vocab: int, batch: int, seq: int, seed: int = 0) -> dict[str, np.ndarray]:
    tokens = np.random.default_rng(seed).integers(0, vocab, (batch, seq + 1)).astype(np.int32)
    return {
        "inputs": tokens[:, :-1],
        "targets": tokens[:, 1:],
        "positions": np.broadcast_to(np.arange(seq, dtype=np.int32), (batch, seq)).copy(),
        "segment_ids": np.ones((batch, seq), np.int32),
        "loss_mask": np.ones((batch, seq), np.float32),
    }


def time_steps(step, steps: int) -> tuple[float, float]:
    """(seconds of the warm-up step, seconds per step over `steps` more)."""
    start = time.perf_counter()
    step()
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return warmup, (time.perf_counter() - start) / steps


def bench_jax(cfg: ModelConfig, batch: dict[str, np.ndarray], steps: int) -> dict[str, float]:
    mesh = make_mesh()
    trainer = Trainer(cfg, mesh, OPTIM, steps + 1, 1)
    state = trainer.init_state(init_params(cfg, jax.random.key(0), mesh), seed=0)
    global_batch = to_global(batch, mesh)
    losses = []

    def step():
        nonlocal state
        state, metrics = trainer.step(state, global_batch)
        losses.append(float(metrics["loss"]))  # waits for the step, as PyTorch's loop does

    warmup, per_step = time_steps(step, steps)
    return {"warmup_s": warmup, "step_s": per_step, "first_loss": losses[0], "devices": mesh.devices.size}


def bench_torch(cfg: ModelConfig, batch: dict[str, np.ndarray], steps: int) -> dict[str, float]:
    torch.manual_seed(0)
    hf = transformers.GPTJConfig(**{k: v for k, v in config_to_hf(cfg).items() if k != "architectures"})
    model = transformers.GPTJForCausalLM(hf).train()
    opt = torch.optim.AdamW(model.parameters(), lr=OPTIM.learning_rate, betas=(OPTIM.b1, OPTIM.b2),
                            eps=OPTIM.eps, weight_decay=0.0)
    inputs = torch.from_numpy(batch["inputs"]).long()
    targets = torch.from_numpy(batch["targets"]).long()
    losses = []

    def step():
        logits = model(input_ids=inputs).logits
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), OPTIM.clip_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())

    warmup, per_step = time_steps(step, steps)
    return {"warmup_s": warmup, "step_s": per_step, "first_loss": losses[0], "threads": torch.get_num_threads(),
            "attention": model.config._attn_implementation}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench_train.json")
    parser.add_argument("--configs", nargs="+", default=["configs/gptj_tiny.yaml", "configs/gptj_125m.yaml"])
    parser.add_argument("--batch", type=int, nargs="+", default=[8, 4], help="batch per config")
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--steps", type=int, default=3, help="timed steps after the warm-up step")
    args = parser.parse_args()
    if len(args.batch) != len(args.configs):
        parser.error("give one --batch per config")

    peaks = {"xla_float32": measure_peak_flops(make_mesh(), "float32", size=2048, min_seconds=1.0),
             "torch_float32": torch_matmul_flops()}
    peak = max(peaks.values())
    report = {
        "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "jax": jax.__version__, "torch": torch.__version__, "transformers": transformers.__version__,
                    "matmul_peak_flops": peaks},
        "seq_len": args.seq, "timed_steps": args.steps, "results": [],
    }
    for path, batch_size in zip(args.configs, args.batch):
        cfg = load_model_config(path)
        cfg = cfg.replace(max_positions=max(cfg.max_positions, args.seq))
        batch = random_batch(cfg.vocab_size, batch_size, args.seq)
        tokens = batch_size * args.seq
        entry = {"config": path, "batch": batch_size, "params": cfg.n_params,
                 "flops_per_token": train_flops_per_token(cfg)}
        for name, bench in (("jax", bench_jax), ("torch", bench_torch)):
            result = bench(cfg, batch, args.steps)
            result["tokens_per_s"] = tokens / result["step_s"]
            result["mfu"] = result["tokens_per_s"] * entry["flops_per_token"] / peak
            entry[name] = result
            print(path, name, {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}, flush=True)
        entry["jax_over_torch_tokens_per_s"] = entry["jax"]["tokens_per_s"] / entry["torch"]["tokens_per_s"]
        report["results"].append(entry)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
