#!/usr/bin/env bash
# Tests what we ship: packs `halt`, installs the tarball in a scratch project without any peer
# dependency, and imports every subpath export as ESM and as CJS, and type-checks each from TS (ESM and CJS).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

cd "$root/packages/typescript"
tarball="$(npm pack --silent --pack-destination "$scratch" | tail -n 1)"
cd "$scratch"
printf '{ "name": "scratch", "private": true }\n' > package.json
npm install --no-audit --no-fund --loglevel=error --ignore-scripts "./$tarball" >/dev/null

subpaths="$(node -e '
  const pkg = require("./node_modules/halt/package.json")
  const subs = Object.keys(pkg.exports).filter((k) => k !== "./package.json").map((k) => k === "." ? "halt" : "halt/" + k.slice(2))
  console.log(subs.join(" "))')"
echo "subpaths: $subpaths"

for sub in $subpaths; do
  node --input-type=module -e "const m = await import('$sub'); if (Object.keys(m).length === 0) throw new Error('$sub (ESM) exports nothing')"
  node -e "const m = require('$sub'); if (Object.keys(m).length === 0) throw new Error('$sub (CJS) exports nothing')"
  echo "ok   $sub  (esm, cjs)"
done

# Exporters load their optional peer when created: without it, importing works (above) and creating one
# fails with HALT_MISSING_PEER; with it (linked from the workspace), creating one works, as ESM and as CJS.
for pair in "prometheus:PrometheusTelemetry:prom-client" "otel:OTelTelemetry:@opentelemetry/api"; do
  IFS=: read -r sub cls peer <<<"$pair"
  node --input-type=module -e "import { $cls } from 'halt/$sub'; try { new $cls(); throw new Error('no error') } catch (e) { if (e.code !== 'HALT_MISSING_PEER') throw e }"
  node -e "const { $cls } = require('halt/$sub'); try { new $cls(); throw new Error('no error') } catch (e) { if (e.code !== 'HALT_MISSING_PEER') throw e }"
  mkdir -p "node_modules/$(dirname "$peer")"
  ln -s "$root/node_modules/$peer" "node_modules/$peer"
  node --input-type=module -e "import { $cls } from 'halt/$sub'; new $cls()"
  node -e "const { $cls } = require('halt/$sub'); new $cls()"
  rm "node_modules/$peer"
  echo "ok   halt/$sub: HALT_MISSING_PEER without $peer, works with it (esm, cjs)"
done

# Types: every subpath resolves with declarations, from ESM and from CJS TypeScript.
: > check.mts
: > check.cts
i=0
for sub in $subpaths; do
  echo "import * as m$i from '$sub'; void m$i" >> check.mts
  echo "import m$i = require('$sub'); void m$i" >> check.cts
  i=$((i + 1))
done
cat > tsconfig.json <<JSON
{ "compilerOptions": { "module": "nodenext", "moduleResolution": "nodenext", "strict": true, "noEmit": true,
  "skipLibCheck": false, "types": ["node"], "typeRoots": ["$root/node_modules/@types"] }, "files": ["check.mts", "check.cts"] }
JSON
node "$root/node_modules/typescript/bin/tsc" -p tsconfig.json
echo "ok   types for every subpath (ESM and CJS)"
