// Build: one entry per subpath export (package.json "exports" is checked against this list by test/unit/exports.test.ts).
import { defineConfig } from 'tsup'

export const entries = {
  index: 'src/index.ts',
  simulate: 'src/simulate/index.ts',
  cli: 'src/cli/index.ts', // the `halt` bin (ESM, keeps its shebang)
  'adapters/express': 'src/adapters/express/index.ts',
  'adapters/fastify': 'src/adapters/fastify/index.ts',
  'adapters/koa': 'src/adapters/koa/index.ts',
  'adapters/hono': 'src/adapters/hono/index.ts',
  'adapters/next': 'src/adapters/next/index.ts',
  'adapters/fetch': 'src/adapters/fetch/index.ts',
  'stores/redis': 'src/stores/redis/index.ts',
  'stores/postgres': 'src/stores/postgres/index.ts',
  'stores/mongodb': 'src/stores/mongodb/index.ts',
  'stores/dynamodb': 'src/stores/dynamodb/index.ts',
  'stores/memcached': 'src/stores/memcached/index.ts',
  'telemetry/prometheus': 'src/telemetry/prometheus/index.ts',
  'telemetry/otel': 'src/telemetry/otel/index.ts',
}

export default defineConfig({
  entry: entries,
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
  splitting: true,
  treeshake: true,
})
