// Build: one entry per subpath export (package.json "exports" is checked against this list by test/unit/exports.test.ts).
import { defineConfig } from 'tsup'

export const entries = {
  index: 'src/index.ts',
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
