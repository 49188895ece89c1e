"""The command line keeps compiled programs on disk between runs, where the user's cache lives."""

import os
import subprocess
import sys

PROGRAM = """
import jax, jax.numpy as jnp
from jtoolformer.cli.main import use_compilation_cache
print(use_compilation_cache())
jax.jit(lambda x: jnp.tanh(x @ x.T).sum())(jnp.ones((64, 64))).block_until_ready()
"""


def run(env: dict[str, str]) -> str:
    env = os.environ | {"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"} | env
    done = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_compiled_programs_are_kept_under_the_xdg_cache(tmp_path):
    assert run({"JTOOLFORMER_COMPILATION_CACHE": "1", "XDG_CACHE_HOME": str(tmp_path)}) == str(
        tmp_path / "jtoolformer" / "jax")
    assert list((tmp_path / "jtoolformer" / "jax").iterdir()), "the compiled program should be on disk"


def test_the_cache_can_be_turned_off(tmp_path):
    assert run({"JTOOLFORMER_COMPILATION_CACHE": "0", "XDG_CACHE_HOME": str(tmp_path)}) == "None"
    assert not (tmp_path / "jtoolformer").exists()
