#!/usr/bin/env bash
# Creates (or refreshes) the Python SDK's virtual environment packages/python/.venv from the project's own files:
# pyproject.toml (what is needed) and constraints.txt (the exact versions). Prints the venv's bin directory.
# Reinstalls only when either file changed. pip downloads are cached under ~/.cache/halt/pip.
set -euo pipefail
cd "$(dirname "$0")/../packages/python"
PY="${PYTHON:-python3}"
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' || {
  echo "python-env: Python 3.9 or later is needed ($PY is $("$PY" --version 2>&1))" >&2
  exit 1
}
# Debian's python3 ships venv (and its ensurepip) separately: install it when missing, as the servers are.
if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null && command -v apt-get >/dev/null; then
  echo "python-env: installing python3-venv (apt-get)" >&2
  (apt-get install -y -qq python3-venv >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3-venv; }) >&2
fi
stamp=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [[ ! -x .venv/bin/python || "$(cat .venv/.halt-stamp 2>/dev/null)" != "$stamp" ]]; then
  echo "python-env: installing packages/python[dev and every extra] into packages/python/.venv" >&2
  "$PY" -m venv .venv
  export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$HOME/.cache/halt/pip}" PIP_DISABLE_PIP_VERSION_CHECK=1
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev,fastapi,flask,django,redis,postgres,mongodb,dynamodb,memcached,async-memcached,prometheus,otel]' >&2
  echo "$stamp" > .venv/.halt-stamp
fi
echo "$PWD/.venv/bin"
