#!/usr/bin/env bash
# Regenerates requirements/lock.txt: the exact version of every package jtoolformer, its test
# references and its TPU extra install, for Python 3.11 and newer on every platform (uv's universal
# resolution; a package that differs by Python version gets one line per version range). Upgrading is
# this command, then `bash scripts/test.sh` (which re-syncs .venv to the new lock) and a commit of
# both files. pyproject.toml's bounds are what the resolution may choose from.
#
#   bash scripts/lock.sh                       # the newest releases within pyproject.toml's bounds
#   bash scripts/lock.sh --upgrade-package transformers   (any other `uv pip compile` option)
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools"
"$tools/bin/python" -m pip install -q --disable-pip-version-check uv==0.13.10
# pip itself is pinned too: the installer is part of what a fresh machine must reproduce.
echo pip | "$tools/bin/uv" pip compile pyproject.toml - --extra test --extra tpu --universal \
  --python-version 3.11 --no-header --annotation-style line --output-file requirements/lock.txt "$@"
