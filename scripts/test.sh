#!/usr/bin/env bash
# Runs every test: lint, types, build, spec vectors and Redis scripts, unit and property tests, the Python SDK (ruff,
# mypy, pytest in packages/python/.venv, made by scripts/python-env.sh), and the integration tests on real servers (Redis, a 3-master Redis Cluster, PostgreSQL, Memcached, moto for DynamoDB, FerretDB for
# MongoDB: started here on loopback, stopped at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh

echo "== lint (biome)"
npx biome check .

echo "== spec vectors are what the reference model generates"
python3 spec/tools/generate_vectors.py --check
python3 spec/tools/generate_set_vectors.py --check

echo "== spec/saas vectors (quotas, penalties, calendar) are what the reference model generates"
python3 spec/tools/generate_saas_vectors.py --check

echo "== Redis scripts are what spec/tools/build_redis.py builds from spec/redis/src"
python3 spec/tools/build_redis.py --check

echo "== HTTP cases are what the reference generator makes"
python3 spec/http/generate.py --check

echo "== Python SDK: virtual environment from packages/python/pyproject.toml and constraints.txt"
PYBIN=$(bash scripts/python-env.sh)

echo "== Python SDK: lint (ruff) and types (mypy)"
(cd packages/python && "$PYBIN/ruff" check . && "$PYBIN/ruff" format --check . && "$PYBIN/mypy")

echo "== typecheck and build"
npm run typecheck -w halt
npm run build -w halt

echo "== the packed package: every subpath imports as ESM and CJS, with types"
bash scripts/check-package.sh

echo "== test servers (scripts/services.sh; installs redis-server when missing)"
SERVERS=(redis redis-cluster postgres memcached dynamodb mongodb)
# Stop at the end only what this run started: a server a developer left running stays up.
status=$(scripts/services.sh status)
started=()
for s in "${SERVERS[@]}"; do
  grep -Eq "^$s +running" <<<"$status" || started+=("$s")
done
stop_servers() {
  if ((${#started[@]})); then scripts/services.sh stop "${started[@]}"; fi
}
trap stop_servers EXIT
eval "$(scripts/services.sh start "${SERVERS[@]}")"

echo "== tests"
# The fault tests (a server killed mid-load, latencies measured) run last and one file at a time, with nothing else
# competing for the two cores: see the test and test:faults scripts of packages/typescript.
npm test -w halt

echo "== Python SDK tests (pytest: spec vectors and HTTP cases, stores on the Redis servers, adapters, Node and Python on one Redis)"
(cd packages/python && "$PYBIN/pytest" -q -p no:cacheprovider)
