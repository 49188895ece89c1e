import os

# 8 simulated devices; must be set before JAX is imported anywhere.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# libtpu (tests compile for TPU topologies) takes a lock per host unless told that several processes may load it.
os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
# Every compilation is real in tests (and nothing is written to ~/.cache); tests/test_compilation_cache.py turns it on.
os.environ["JTOOLFORMER_COMPILATION_CACHE"] = "0"

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def smollm():
    """The embedded default model (SmolLM2-135M) as the CPU runs it, loaded once per test process: its
    jitted entry points then compile each shape once for every test that uses it."""
    from jtoolformer import load_model

    return load_model()


@pytest.fixture(scope="session")
def smollm_scanned():
    """SmolLM2 with its layers as one scanned block, as TPUs and GPUs run it: the same weights, compiled
    about twice as fast as the unrolled layers the CPU runs by default, for tests whose cost is compiling
    a whole annotation pipeline."""
    from jtoolformer import load_model

    return load_model(scan_layers=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files holding a slow test run first, each file's tests together and in order. Under `-n` with
    `--dist loadfile` (pyproject.toml's addopts) each worker takes the next file as it frees up: the long
    files start early, the short ones even out the end, and no module fixture is built on both workers.
    (Under `--dist load`, which hands out runs of tests by count, this order would load one worker.)"""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)
