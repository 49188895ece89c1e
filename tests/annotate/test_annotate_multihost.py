"""`jtoolformer annotate --distributed` on two real processes (jax.distributed over CPU) sharing --out:
the same output, byte for byte, as one process on the same number of devices per host; a bad
document in the corpus is left out and counted, not fatal. The three processes share one compilation
cache, as the command line's runs share the user's: host 0 loads the programs the single process compiled
(host 1's devices have other ids, so it compiles its own)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from jtoolformer.data.corpus import DEMO_CORPUS
from jtoolformer.data.documents import read_jsonl

OVERRIDES = ["shard_size=2", "positions_per_doc=2", "calls_per_position=2", "max_call_tokens=16", "filter_threshold=0.0"]
DEVICES_PER_HOST = 2


def annotate(corpus: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = os.environ | {"XLA_FLAGS": f"--xla_force_host_platform_device_count={DEVICES_PER_HOST}",
                        "JAX_COMPILATION_CACHE_DIR": str(out.parent / "compiled"),
                        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    command = [sys.executable, "-m", "jtoolformer", "annotate", "--tools", "calculator", "--corpus", str(corpus),
               "--out", str(out), *extra, *OVERRIDES]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    return output


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def outputs(out: Path) -> dict[str, bytes]:
    files = sorted((out / "shards").iterdir()) + [out / "stats.json", out / "settings.json"]
    return {p.name: p.read_bytes() for p in files}


@pytest.mark.slow
def test_two_hosts_annotate_their_shards_into_the_output_of_one(tmp_path):
    docs = [d for d in read_jsonl(Path(DEMO_CORPUS)) if d["id"].startswith("calc-")][:5]
    corpus = tmp_path / "docs.jsonl"
    lines = [json.dumps({"id": d["id"], "text": d["text"]}).encode() for d in docs]
    corpus.write_bytes(b"\n".join(lines[:2] + [b'{"text": "Caf\xe9 bill: 3 + 4 = 7."}'] + lines[2:]) + b"\n")

    one = finish(annotate(corpus, tmp_path / "one"))
    port = free_port()
    hosts = [annotate(corpus, tmp_path / "two", "--distributed", "--coordinator", f"localhost:{port}",
                      "--num-processes", "2", "--process-id", str(h)) for h in range(2)]
    host0, host1 = (finish(h) for h in hosts)

    assert outputs(tmp_path / "two") == outputs(tmp_path / "one")
    stats = json.loads((tmp_path / "two" / "stats.json").read_text())
    assert stats["Calculator"]["documents"] == 5 and stats["_c_star_examples"] >= 1
    assert stats["_corpus_skipped"] == {"not_utf8": 1} and "left out bad documents: 1 not_utf8" in host0
    assert (tmp_path / "two" / "tfds").is_dir()
    assert "C*:" in host0 and "C*:" in one and "C*:" not in host1
