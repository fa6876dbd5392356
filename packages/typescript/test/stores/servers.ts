// Which test servers are running (scripts/services.sh exports their addresses): skip locally when absent, fail in CI.

const inCI = process.env.CI === 'true' || process.env.CI === '1'

/**
 * The value of a server's environment variable. When it is missing the tests that need it are skipped,
 * except under CI, where a missing server is an error: CI must never pass by skipping them.
 */
export function server(name: 'HALT_TEST_REDIS_URL' | 'HALT_TEST_REDIS_CLUSTER_NODES'): string | undefined {
  const value = process.env[name]
  if (value) return value
  if (inCI) throw new Error(`${name} is not set, and CI must run the integration tests: run them with npm test (scripts/test.sh starts the servers).`)
  return undefined
}
