"""`jtoolformer train` on two real processes (jax.distributed over CPU), 2 devices each: the same
losses and the same trained params as one process with all 4 devices."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import sentences

DEVICES = 4


def train(out: Path, args: list[str], hosts: int) -> list[str]:
    env = os.environ | {"XLA_FLAGS": f"--xla_force_host_platform_device_count={DEVICES // hosts}"}
    command = [sys.executable, "-m", "jtoolformer", "train", "--out", str(out)]
    if hosts == 1:
        commands = [command + args]
    else:
        with socket.socket() as s:
            s.bind(("localhost", 0))
            port = s.getsockname()[1]
        commands = [command + ["--coordinator", f"localhost:{port}", "--num-processes", str(hosts), "--process-id",
                               str(h), *args, "distributed=true"] for h in range(hosts)]
    processes = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for c in commands]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    for p, output in zip(processes, outputs):
        assert p.returncode == 0, output
    return outputs


def losses(out: Path) -> list[float]:
    return [r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


@pytest.mark.slow
def test_two_hosts_train_like_one_host_with_all_their_devices(tmp_path, hf_dir):
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in sentences(100, 1)))
    args = ["--config", "configs/train_tiny.yaml", "--data", str(data), f"model={hf_dir}", "steps=6",
            "log_every=1", "checkpoint.save_every=3", "checkpoint.eval_every=3", "peak_tflops_per_device=1"]
    train(tmp_path / "one", args, hosts=1)
    train(tmp_path / "two", args, hosts=2)
    assert len(losses(tmp_path / "one")) == 6
    assert losses(tmp_path / "two") == pytest.approx(losses(tmp_path / "one"), rel=1e-5)
    train(tmp_path / "two", ["--export", "latest"], hosts=1)
    one = load_file(tmp_path / "one" / "hf" / "final" / "model.safetensors")
    two = load_file(tmp_path / "two" / "hf" / "latest" / "model.safetensors")
    assert one.keys() == two.keys()
    for name in one:
        np.testing.assert_allclose(two[name], one[name], rtol=1e-5, atol=1e-6)
