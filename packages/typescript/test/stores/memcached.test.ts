// MemcachedStore on a real memcached: the conformance suite, then what is Memcached's own: key hashing, generations.
import { createHash, randomUUID } from 'node:crypto'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { compilePolicy } from '../../src/index.js'
import { type MemcachedStore, memcachedKey } from '../../src/stores/memcached/index.js'
import { openMemcached } from './cas-clients.js'
import { pause, serverUrl, servicePid, sleep } from './cas-support.js'
import { storeConformance } from './conformance.js'

const CLIENTS = join(dirname(fileURLToPath(import.meta.url)), 'cas-clients.ts')
const URL = serverUrl('HALT_TEST_MEMCACHED_URL')
const T0 = 1_700_000_000_000

describe.skipIf(URL === undefined)('Memcached', () => {
  const prefix = `halt-${randomUUID().slice(0, 8)}:`
  let close: () => Promise<void>
  storeConformance<MemcachedStore>({
    name: 'MemcachedStore',
    async create() {
      const opened = await openMemcached(URL as string, prefix)
      close = opened.close
      return opened.store
    },
    dispose: () => close(),
    inspect: async (store, ns, id) => {
      const held = await store.get(ns, id)
      return held === undefined ? undefined : { state: held.state }
    },
    expire: async (_store, at) => {
      await sleep(Math.max(0, at - Date.now()) + 25)
    },
    // Memcached's clock ticks in whole seconds and the store adds one: an item goes within 2 s after its expiry.
    expiryLagMs: 2000,
    stall: (_store, ms) => pause(servicePid('memcached'), ms),
    setAtomic: false,
    processes: { module: CLIENTS, args: () => ['memcached', URL as string, prefix] },
  })
})

describe.skipIf(URL === undefined)('MemcachedStore', () => {
  const prefix = `halt-${randomUUID().slice(0, 8)}:`
  let opened: Awaited<ReturnType<typeof openMemcached>>
  beforeAll(async () => {
    opened = await openMemcached(URL as string, prefix)
  })
  afterAll(() => opened.close())

  it('keys: spec/KEYS.md as they are when Memcached can hold them; hashed over 250 bytes or with spaces or control characters', () => {
    const rule = compilePolicy({ name: 'keys', limit: 1, window: 60 })
    expect(opened.store.key(rule.ns, 'ip:203.0.113.7')).toBe(`${prefix}keys:tb:{ip:203.0.113.7}`)
    expect(opened.store.key(rule.ns, 'ünï')).toBe(`${prefix}keys:tb:{ünï}`)
    const digest = (k: string) => createHash('sha256').update(k, 'utf8').digest('base64url')
    for (const id of [' ', 'a b', 'line\nbreak', 'tab\t', '\0', '\x7f', 'x'.repeat(250)]) {
      expect(opened.store.key(rule.ns, id), JSON.stringify(id)).toBe(`${prefix}#${digest(`${prefix}keys:tb:{${id}}`)}`)
    }
    expect(memcachedKey('halt:', 'halt:api:tb:{ü}')).toBe('halt:api:tb:{ü}')
    expect(memcachedKey('halt:', `halt:api:tb:{${'ü'.repeat(119)}}`)).toMatch(/^halt:#[A-Za-z0-9_-]{43}$/) // 252 bytes
  })

  it('an item lives whole seconds: at least its state’s expiry, plus one (Memcached’s clock ticks in seconds)', async () => {
    const raw = opened.client
    const rule = compilePolicy({ name: `life-${randomUUID().slice(0, 6)}`, limit: 1, window: 1 })
    const now = Date.now()
    await opened.store.consume(rule.ns, 'k', rule, now, 1) // fresh again at now + 1000
    const key = opened.store.key(rule.ns, 'k')
    await sleep(1000)
    expect(await raw.get(key)).toBeDefined()
    await sleep(2100)
    expect(await raw.get(key)).toBeUndefined()
    // The item gone, this process's next write of the key is an `add`, not a `cas` bound to fail.
    const before = { ...opened.store.counters }
    expect((await opened.store.consume(rule.ns, 'k', rule, Date.now(), 1)).allowed).toBe(true)
    expect(opened.store.counters.conflicts - before.conflicts).toBe(0)
    expect(opened.store.counters.reads - before.reads).toBe(0)
  })

  it('clear(ns) and clear() start a new generation: items written before count as absent; so does a lost generation item', async () => {
    const rule = compilePolicy({ name: `gen-${randomUUID().slice(0, 6)}`, limit: 1, window: 60 })
    await opened.store.consume(rule.ns, 'k', rule, T0, 1)
    expect((await opened.store.consume(rule.ns, 'k', rule, T0, 1)).allowed).toBe(false)
    // The generation item evicted (Memcached may drop any item): a new generation starts, nothing older comes back.
    await opened.client.delete(`${prefix}${rule.ns}:gen`)
    expect(await opened.store.get(rule.ns, 'k')).toBeUndefined()
    expect((await opened.store.consume(rule.ns, 'k', rule, T0, 1)).allowed).toBe(true)
    await opened.client.delete(`${prefix}gen`)
    expect((await opened.store.consume(rule.ns, 'k', rule, T0, 1)).allowed).toBe(true)
  })

  it('the only writer of a key checks in one round trip: after its first check it writes (cas + gets behind it) without reading first', async () => {
    const rule = compilePolicy({ name: `one-${randomUUID().slice(0, 6)}`, limit: 30, window: 60 })
    const store = opened.store
    await store.consume(rule.ns, 'k', rule, T0, 1)
    const before = { ...store.counters }
    const allowed: boolean[] = []
    for (let i = 1; i <= 40; i++) allowed.push((await store.consume(rule.ns, 'k', rule, T0 + i, 1)).allowed)
    expect(allowed.filter(Boolean)).toHaveLength(29)
    expect(store.counters.reads - before.reads).toBe(0)
    expect(store.counters.conflicts - before.conflicts).toBe(0)
    expect(store.counters.writes - before.writes).toBe(40)
  })

  it('two writers of one key (two processes) alternating: each wrong guess costs a conflict, never a wrong count', async () => {
    const other = await openMemcached(URL as string, prefix)
    try {
      const rule = compilePolicy({ name: `two-${randomUUID().slice(0, 6)}`, limit: 50, window: 60 })
      let admitted = 0
      for (let i = 0; i < 80; i++) {
        const store = i % 2 === 0 ? opened.store : other.store
        if ((await store.consume(rule.ns, 'k', rule, T0 + i, 1)).allowed) admitted++
      }
      expect(admitted).toBe(50)
      expect(other.store.counters.conflicts).toBeGreaterThan(0)
    } finally {
      await other.close()
    }
  })

  it('a clear by another process is honoured by the next check of a writer that speculates', async () => {
    const other = await openMemcached(URL as string, prefix)
    try {
      const rule = compilePolicy({ name: `clr-${randomUUID().slice(0, 6)}`, limit: 2, window: 60 })
      const store = opened.store
      await store.consume(rule.ns, 'k', rule, T0, 1)
      await store.consume(rule.ns, 'k', rule, T0, 1)
      expect((await store.consume(rule.ns, 'k', rule, T0, 1)).allowed).toBe(false)
      await other.store.clear(rule.ns)
      expect((await store.consume(rule.ns, 'k', rule, T0, 1)).allowed).toBe(true)
      expect(await other.store.get(rule.ns, 'k')).toMatchObject({ state: expect.any(Array) })
      await other.store.clear()
      expect((await store.consume(rule.ns, 'k', rule, T0, 1)).allowed).toBe(true)
      expect((await store.consume(rule.ns, 'k', rule, T0, 1)).allowed).toBe(true)
      expect((await store.consume(rule.ns, 'k', rule, T0, 1)).allowed).toBe(false)
    } finally {
      await other.close()
    }
  })
})
