"""Peak host memory of annotation: each run is a fresh process (compilation cache off, so every program
is compiled in it) annotating GSM8K problems with the embedded default model and the Calculator, as
`jtoolformer annotate` does (shards of 64 documents). Records the peak RSS (VmHWM) and the RSS after
every shard, for the paper's k and m on a few documents and for a smaller k and m on two corpus sizes
(what grows with the corpus shows between those two). Writes JSON (--out).

    nice -n 10 python scripts/bench_annotate_memory.py --gsm8k ../shared/data/gsm8k/train.jsonl \\
        --paper-docs 16 --sizes 50,500 --k 1 --m 1 --out scripts/results/bench_annotate_memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


TARGET_PEAK_MIB = 1907  # issue 15: at most 2 GB (2·10⁹ bytes) of peak RSS


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def child(args: argparse.Namespace) -> dict:
    """One annotation run in this process; its memory figures."""
    from jtoolformer import load_model
    from jtoolformer.annotate.pipeline import AnnotateConfig, Annotator
    from jtoolformer.annotate.shards import run_annotation
    from jtoolformer.data.gsm8k import read_problems
    from jtoolformer.tools.registry import make_tools

    docs = list(read_problems(args.gsm8k, start=args.start, limit=args.docs))
    lm = load_model()
    loaded = _status_mib("VmRSS")
    cfg = AnnotateConfig(tools="calculator", positions_per_doc=args.k, calls_per_position=args.m, batch_docs=args.batch_docs)
    annotator = Annotator(lm, make_tools("calculator"), cfg)
    after_shard = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        stats = run_annotation(annotator, docs, out, progress=False,
                               after_shard=lambda shard: after_shard.append(round(_status_mib("VmRSS"))))
    seconds = time.perf_counter() - start
    calc = stats["Calculator"]
    return {"documents": len(docs), "k": args.k, "m": args.m, "batch_docs": cfg.batch_docs,
            "shard_size": cfg.shard_size, "max_position_tokens": cfg.max_position_tokens,
            "max_decode_rows": cfg.max_decode_rows, "max_rows": cfg.max_rows,
            "peak_rss_mib": round(_status_mib("VmHWM")), "rss_after_model_load_mib": round(loaded),
            "rss_after_each_shard_mib": after_shard, "seconds": round(seconds, 1),
            "positions": calc["positions"], "calls_sampled": calc["calls_sampled"], "executed": calc["executed"]}


def run(args: argparse.Namespace, docs: int, k: int, m: int) -> dict:
    """A fresh process for one run."""
    command = [sys.executable, __file__, "--child", "--gsm8k", args.gsm8k, "--start", str(args.start),
               "--docs", str(docs), "--k", str(k), "--m", str(m), "--batch-docs", str(args.batch_docs)]
    env = {**os.environ, "JTOOLFORMER_COMPILATION_CACHE": "0"}
    done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gsm8k", default="../shared/data/gsm8k/train.jsonl", help="GSM8K train JSONL")
    parser.add_argument("--start", type=int, default=2000, help="first problem (line) used")
    parser.add_argument("--batch-docs", type=int, default=16, help="AnnotateConfig's default")
    parser.add_argument("--paper-docs", type=int, default=16, help="documents at the paper's k 20, m 10 (0: none)")
    parser.add_argument("--sizes", default="50,200", help="two corpus sizes at --k, --m")
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--m", type=int, default=3)
    parser.add_argument("--out", default="scripts/results/bench_annotate_memory.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--docs", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return

    small, large = (int(n) for n in args.sizes.split(","))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    result = {"model": "SmolLM2-135M (embedded default)", "tool": "Calculator",
              "corpus": f"GSM8K train (problems from line {args.start})", "compilation_cache": "off", "commit": commit,
              "target_peak_mib": TARGET_PEAK_MIB, "paper_k_m": None, "growth": []}

    def save(note: str | None = None) -> None:  # after every run, so a stopped benchmark keeps what it measured
        peaks = [r["peak_rss_mib"] for r in [result["paper_k_m"], *result["growth"]] if r]
        result.update(max_peak_mib=max(peaks, default=None), incomplete=note)
        if len(result["growth"]) == 2:
            result["peak_growth_mib"] = result["growth"][1]["peak_rss_mib"] - result["growth"][0]["peak_rss_mib"]
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))

    if args.paper_docs:
        save("running the paper's k and m")
        result["paper_k_m"] = run(args, args.paper_docs, 20, 10)
    for n in (small, large):
        save(f"running {n} documents at k {args.k}, m {args.m}")
        result["growth"].append(run(args, n, args.k, args.m))
    save()
    print(json.dumps(result, indent=1))

if __name__ == "__main__":
    main()
