import os

# 8 simulated devices; must be set before JAX is imported anywhere.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Every compilation is real in tests (and nothing is written to ~/.cache); tests/test_compilation_cache.py turns it on.
os.environ["JTOOLFORMER_COMPILATION_CACHE"] = "0"
