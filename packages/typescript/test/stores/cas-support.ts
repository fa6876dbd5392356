// Test servers of the compare-and-set stores (scripts/services.sh exports their addresses): skip locally when absent,
// fail in CI. Also: pausing a server process (SIGSTOP) to make it hang, for the timeout and failure-policy tests.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { SPEC_DIR } from '../support/vectors.js'

const inCI = process.env.CI === 'true' || process.env.CI === '1'

export type ServerVar = 'HALT_TEST_POSTGRES_URL' | 'HALT_TEST_MEMCACHED_URL' | 'HALT_TEST_DYNAMODB_URL' | 'HALT_TEST_FERRETDB_URL' | 'HALT_TEST_MONGODB_URL'

/**
 * The value of a server's environment variable, or undefined (its tests are then skipped). Under CI a missing server
 * is an error, so that CI never passes by skipping, except `optional` ones (a real MongoDB, which CI does not have).
 */
export function serverUrl(name: ServerVar, optional = false): string | undefined {
  const value = process.env[name]
  if (value) return value
  if (inCI && !optional)
    throw new Error(`${name} is not set, and CI must run the integration tests: run them with npm test (scripts/test.sh starts the servers).`)
  return undefined
}

export const SERVICES_SH = join(SPEC_DIR, '..', 'scripts', 'services.sh')
export const SERVICES_DIR = process.env.HALT_SERVICES_DIR ?? join(SPEC_DIR, '..', '.services')
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** The pid of a server that scripts/services.sh started (in `dir`, default the repository's .services). */
export function servicePid(service: 'memcached' | 'dynamodb' | 'mongodb', dir = SERVICES_DIR): number {
  const file = { memcached: 'memcached/memcached.pid', dynamodb: 'dynamodb/dynamodb.pid', mongodb: 'mongodb/ferretdb.pid' }[service]
  return Number(readFileSync(join(dir, file), 'utf8').trim())
}

/** Freeze a server process for `ms` (SIGSTOP, then SIGCONT): it accepts nothing and answers nothing meanwhile. */
export async function pause(pid: number, ms: number): Promise<void> {
  process.kill(pid, 'SIGSTOP')
  try {
    await sleep(ms)
  } finally {
    process.kill(pid, 'SIGCONT')
  }
}
