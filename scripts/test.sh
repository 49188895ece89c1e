#!/usr/bin/env bash
# Sets up .venv with the test references and runs the whole suite (slow tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
# One file at a time per worker, in the order tests/conftest.py gives (files with slow tests first).
exec .venv/bin/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder -q "$@"
