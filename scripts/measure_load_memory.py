"""Peak host memory of loading a HF checkpoint, as a multiple of the params' size; prints JSON.

Run in a fresh process (ru_maxrss is per process): python scripts/measure_load_memory.py DIR
"""

import json
import sys


def status_mb(field: str) -> float:
    """VmRSS / VmHWM of this process (getrusage's maxrss would include a forking parent's peak)."""
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields[field].split()[0]) / 1024


def main(directory: str) -> None:
    import jax

    from jtoolformer.checkpoints.hf import load_hf
    from jtoolformer.sharding import make_mesh

    mesh = make_mesh(devices=jax.devices()[:1])
    jax.block_until_ready(jax.numpy.zeros(1))
    before = status_mb("VmRSS")
    _, params = load_hf(directory, mesh)
    jax.block_until_ready(params)
    peak = status_mb("VmHWM")
    size = sum(x.nbytes for x in jax.tree.leaves(params)) / 2**20
    print(json.dumps({"params_mb": size, "peak_over_baseline_mb": peak - before,
                      "ratio": (peak - before) / size}))


if __name__ == "__main__":
    main(sys.argv[1])
