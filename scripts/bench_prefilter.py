"""Benchmark of the Calculator's pre-filter on documents full of numbers: milliseconds per KB at
several sizes, which stay level when the search is linear. Target on the 2-core dev machine: at most
a few ms per KB (the quadratic search it replaced took 12.3 s on 5 KB of 500 numbers).

Each document is generated until it holds no arithmetic triple, so the search cannot stop early.
The time per KB grows with the numbers per KB: ~100 in "numbers" (the issue's case), ~35 in
"price_table", 512 in "repeated_number" (one every 2 characters, the most a text can hold).

    python scripts/bench_prefilter.py --out scripts/results/bench_prefilter.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from jtoolformer.tools.base import ToolContext
from jtoolformer.tools.calculator import Calculator
from jtoolformer.tools.calculator_prefilter import find_numbers

TARGET_MS_PER_KB = 5.0
SIZES_KB = (1, 4, 16, 64)
ITEMS = ["widget", "gadget", "bolt", "nut", "sprocket", "gear", "cable", "switch", "valve", "hinge"]


def number_dense(rng: random.Random, size: int) -> str:
    """Numbers and nothing else, ~10 characters each (the issue's 5 KB of 500 numbers)."""
    numbers = []
    while sum(len(n) + 1 for n in numbers) < size:
        numbers.append(f"{rng.randrange(10**6, 10**7)}.{rng.randrange(100):02d}")
    return " ".join(numbers)[:size]


def price_table(rng: random.Random, size: int) -> str:
    """Rows of a price list: item code, name, list and sale price with thousands separators."""
    rows = []
    while sum(len(r) + 1 for r in rows) < size:
        rows.append(f"SKU{rng.randrange(10**5):05d} | {rng.choice(ITEMS)} {rng.choice(ITEMS)} | "
                    f"list ${rng.randrange(100, 10_000):,}.{rng.randrange(100):02d} | "
                    f"sale ${rng.randrange(100, 10_000):,}.{rng.randrange(100):02d} |")
    return "\n".join(rows)[:size]


def repeated_number(rng: random.Random, size: int) -> str:
    """One number over and over, "7 7 7 …": the densest text, 100 partners for every number."""
    return f"{rng.randrange(2, 10)} " * (size // 2)


def without_arithmetic(make: Callable[[random.Random, int], str], size: int, seed: int) -> tuple[str, int]:
    """A document the pre-filter drops (so it is searched to the end), and the seed that made it."""
    drop_all = Calculator(dense_number_keep_rate=0.0)
    while drop_all.prefilter(text := make(random.Random(seed), size), ToolContext()):
        seed += 1
    return text, seed


def time_prefilter(text: str, repeats: int) -> tuple[float, float]:
    """Median wall-clock and CPU seconds of one pre-filter decision, after one call that is not timed
    (CPU time is what a machine shared with other jobs changes least)."""
    calculator = Calculator(dense_number_keep_rate=0.0)
    calculator.prefilter(text, ToolContext())
    wall, cpu = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        calculator.prefilter(text, ToolContext())
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the figures")
    args = parser.parse_args()

    kinds = {"numbers": number_dense, "price_table": price_table, "repeated_number": repeated_number}
    figures: dict[str, dict] = {}
    for kind, make in kinds.items():
        rows = []
        for kb in SIZES_KB:
            text, seed = without_arithmetic(make, kb * 1024, args.seed)
            wall, cpu = time_prefilter(text, args.repeats)
            rows.append({"kb": kb, "numbers": len(find_numbers(text)), "seed": seed, "wall_ms": wall * 1000,
                         "wall_ms_per_kb": wall * 1000 / kb, "cpu_ms": cpu * 1000, "cpu_ms_per_kb": cpu * 1000 / kb})
            print(f"{kind:16s} {kb:3d} KB  {rows[-1]['numbers']:6d} numbers  wall {rows[-1]['wall_ms_per_kb']:6.2f} "
                  f"ms/KB  cpu {rows[-1]['cpu_ms_per_kb']:6.2f} ms/KB", flush=True)
        per_kb = {row["kb"]: row["cpu_ms_per_kb"] for row in rows}
        figures[kind] = {"sizes": rows, "cpu_ms_per_kb_16_over_1": per_kb[16] / per_kb[1],
                         "cpu_ms_per_kb_64_over_1": per_kb[64] / per_kb[1],
                         "cpu_ms_per_kb_64_over_4": per_kb[64] / per_kb[4], "max_cpu_ms_per_kb": max(per_kb.values())}
    result = {"machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                          "python": platform.python_version(), "load_average_1min": os.getloadavg()[0]},
              "target_ms_per_kb": TARGET_MS_PER_KB, "repeats": args.repeats, "kinds": figures,
              "meets_target": all(f["max_cpu_ms_per_kb"] <= TARGET_MS_PER_KB for f in figures.values())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
