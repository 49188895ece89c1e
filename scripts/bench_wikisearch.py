"""Benchmark of the WikiSearch index: build time for a synthetic 100k-passage collection, load time,
per-query latency. Targets on the 2-core dev machine: build < 60 s, mean query < 10 ms.

    python scripts/bench_wikisearch.py --out out/bench_wikisearch.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import bm25s
import numpy as np

from jtoolformer.tools.base import ToolContext
from jtoolformer.tools.retrieval import PassageIndex, build_index
from jtoolformer.tools.wikisearch import WikiSearch

BUILD_TARGET_S = 60.0
QUERY_TARGET_MS = 10.0
SYLLABLES = ["ka", "lo", "mi", "re", "tu", "sen", "dor", "vi", "pa", "qua", "ber", "lin", "to", "na", "gri", "fel",
             "os", "ump", "ar", "zen"]


def pseudo_words(count: int, rng: np.random.Generator) -> list[str]:
    """Distinct pronounceable words of 2-4 syllables."""
    words: set[str] = set()
    while len(words) < count:
        length = rng.integers(2, 5)
        words.add("".join(SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), length)))
    return sorted(words)


def write_collection(path: Path, passages: int, vocabulary: int, rng: np.random.Generator) -> list[list[str]]:
    """A KILT-style JSONL of `passages` passages (40-120 words, Zipf-distributed word frequencies);
    returns the word lists, from which queries are drawn."""
    words = np.array(pseudo_words(vocabulary, rng))
    ranks = np.minimum(rng.zipf(1.2, size=passages * 120), vocabulary) - 1
    lengths = rng.integers(40, 121, size=passages)
    texts, start = [], 0
    with path.open("w", encoding="utf-8") as file:
        for i, length in enumerate(lengths):
            passage = words[rng.permutation(ranks[start:start + length])].tolist()
            start += length
            texts.append(passage)
            file.write(json.dumps({"id": i, "title": " ".join(passage[:2]).title(),
                                   "text": " ".join(passage) + "."}) + "\n")
    return texts


def latency_summary(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"mean": float(ms.mean()), "p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
            "p99": float(np.percentile(ms, 99)), "max": float(ms.max())}


def time_queries(index: PassageIndex, queries: list[str]) -> tuple[list[float], int]:
    tool, context, found = WikiSearch(index), ToolContext(), 0
    tool(queries[0], context)  # first touch of the memory maps
    latencies = []
    for query in queries:
        started = time.perf_counter()
        found += bool(tool(query, context))
        latencies.append(time.perf_counter() - started)
    return latencies, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--vocabulary", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the figures")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    with tempfile.TemporaryDirectory() as work:
        source, index_dir = Path(work) / "passages.jsonl", Path(work) / "index"
        started = time.perf_counter()
        texts = write_collection(source, args.passages, args.vocabulary, rng)
        generate_s = time.perf_counter() - started

        started = time.perf_counter()
        build_index(source, index_dir)
        build_s = time.perf_counter() - started

        started = time.perf_counter()
        index = PassageIndex.load(index_dir)
        load_s = time.perf_counter() - started

        queries = [" ".join(rng.choice(texts[rng.integers(len(texts))], size=rng.integers(2, 7)))
                   for _ in range(args.queries)]
        latencies, found = time_queries(index, queries)
        index_mb = sum(f.stat().st_size for f in index_dir.iterdir()) / 2**20

    query_ms = latency_summary(latencies)
    figures = {
        "passages": args.passages, "vocabulary": args.vocabulary, "queries": args.queries, "seed": args.seed,
        "collection_generate_s": round(generate_s, 2),
        "index_build_s": round(build_s, 2), "index_load_s": round(load_s, 3), "index_size_mb": round(index_mb, 1),
        "query_latency_ms": {k: round(v, 3) for k, v in query_ms.items()},
        "queries_with_a_result": found,
        "targets": {"index_build_s": BUILD_TARGET_S, "query_latency_ms_mean": QUERY_TARGET_MS},
        "meets_targets": build_s < BUILD_TARGET_S and query_ms["mean"] < QUERY_TARGET_MS,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "bm25s": bm25s.__version__},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
