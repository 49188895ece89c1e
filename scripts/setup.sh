#!/usr/bin/env bash
# Creates .venv with exactly the versions of requirements/lock.txt and installs jtoolformer into it
# (editable) with the embedded default model (requirements/model.txt).
#   setup.sh        the library
#   setup.sh test   + the test references (PyTorch CPU, transformers) and libtpu (compile-only TPU tests)
#   setup.sh tpu    + libtpu (a TPU VM)
# Quick when nothing changed. A .venv made from another lock, pyproject.toml, Python or version of this
# script, or whose packages no longer match the lock (an old one, or one changed by hand), is rebuilt
# from scratch: re-installing over it would leave behind packages the lock no longer has.
set -euo pipefail
cd "$(dirname "$0")/.."
case ${1:-} in
  "") extras="" ;;
  test) extras="test,tpu" ;;
  tpu) extras="tpu" ;;
  *) echo "usage: $0 [test|tpu]" >&2; exit 2 ;;
esac
python=${PYTHON:-python3}
lock=requirements/lock.txt
stamp=.venv/jtoolformer-setup
key="$("$python" -V) $(cat $lock requirements/model.txt pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check --no-input)

matches() { .venv/bin/python scripts/venv_matches_lock.py $lock requirements/model.txt; }
covered() {  # the stamp's extras include every one asked for
  local have=",$(sed -n 2p $stamp),"
  for extra in ${extras//,/ }; do [[ $have == *",$extra,"* ]] || return 1; done
}

if [[ -d .venv ]]; then
  if [[ -f $stamp && $(sed -n 1p $stamp) == "$key" ]] && matches 2>/dev/null; then
    covered && exit 0  # else only extras are missing: they are added below
  else
    echo "setup: .venv does not match $lock; rebuilding it" >&2
    rm -rf .venv
  fi
fi
[[ -d .venv ]] || "$python" -m venv .venv
have=$( [[ -f $stamp ]] && sed -n 2p $stamp || true )
all=$(echo "$have,$extras" | tr ',' '\n' | sed '/^$/d' | sort -u | paste -sd, -)
rm -f $stamp
"${pip[@]}" -c $lock pip setuptools packaging
# No build isolation: the editable install is built with the lock's setuptools, not today's.
"${pip[@]}" -c $lock --no-build-isolation -e ".${all:+[$all]}"
"${pip[@]}" --no-deps -r requirements/model.txt
if ! matches; then
  echo "setup: .venv does not match $lock after installing it (see above)" >&2
  exit 1
fi
printf '%s\n%s\n' "$key" "$all" > $stamp
