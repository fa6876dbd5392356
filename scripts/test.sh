#!/usr/bin/env bash
# Runs every test: lint, types, build, spec vectors, unit and property tests, integration tests on real servers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh

echo "== lint (biome)"
npx biome check .

echo "== spec vectors are what the reference model generates"
python3 spec/tools/generate_vectors.py --check

echo "== HTTP cases are what the reference generator makes"
python3 spec/http/generate.py --check

echo "== typecheck and build"
npm run typecheck -w halt
npm run build -w halt

echo "== tests"
npm test -w halt
