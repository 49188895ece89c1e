import subprocess
import sys


def test_python_m_jtoolformer_lists_the_subcommands():
    proc = subprocess.run([sys.executable, "-m", "jtoolformer", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: jtoolformer")
    for command in ("annotate", "train", "generate", "index", "eval", "demo"):
        assert command in proc.stdout
