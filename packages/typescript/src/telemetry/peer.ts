// Loads an optional peer dependency (prom-client, @opentelemetry/api) when an exporter is created, so importing its subpath never fails without it.
import { HaltConfigError } from '../core/errors.js'

/**
 * `require(name)` from where Halt is installed, through `node:module` (Node
 * 20.16+, Bun, Deno; no static import of it, so bundles for other runtimes
 * still build). Throws `HALT_MISSING_PEER` naming the package and the option
 * that takes the module directly when it cannot be loaded.
 */
export function loadPeer<T>(name: string, who: string, option: string): T {
  try {
    // Not the bare `require`: bundlers replace it with a stub that throws in ESM. The CJS build shims import.meta.url.
    const mod = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule?.('node:module') as
      | { createRequire(from: string): (id: string) => unknown }
      | undefined
    if (mod === undefined) throw new Error('this runtime cannot load packages synchronously')
    return mod.createRequire(import.meta.url)(name) as T
  } catch (e) {
    throw new HaltConfigError(
      'HALT_MISSING_PEER',
      `${who} needs the package '${name}' (${e instanceof Error ? e.message.split('\n')[0] : String(e)}). Fix: npm install ${name}, or pass the module as ${option}.`,
    )
  }
}
