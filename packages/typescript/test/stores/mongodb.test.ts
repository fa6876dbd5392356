// MongoDBStore: the conformance suite on FerretDB v1.24.2 (always), and on a real MongoDB when HALT_TEST_MONGODB_URL
// names one; then what is MongoDB's own: the document layout, the TTL index, E11000 races.
import { randomUUID } from 'node:crypto'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { MongoClient } from 'mongodb'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { compilePolicy } from '../../src/index.js'
import type { HaltDocument, MongoDBStore } from '../../src/stores/mongodb/index.js'
import { openMongo } from './cas-clients.js'
import { pause, serverUrl, servicePid } from './cas-support.js'
import { storeConformance } from './conformance.js'

const CLIENTS = join(dirname(fileURLToPath(import.meta.url)), 'cas-clients.ts')
const FERRETDB = serverUrl('HALT_TEST_FERRETDB_URL')
const MONGODB = serverUrl('HALT_TEST_MONGODB_URL', true)
const T0 = 1_700_000_000_000

const servers: [string, string | undefined, boolean][] = [
  ['FerretDB v1.24.2 (SQLite)', FERRETDB, false],
  ['MongoDB', MONGODB, true],
]
for (const [label, url, real] of servers) {
  describe.skipIf(url === undefined)(label, () => {
    const collection = `halt_${randomUUID().slice(0, 8)}`
    const prefix = 'halt:'
    let client: MongoClient
    storeConformance<MongoDBStore>({
      name: `MongoDBStore on ${label}`,
      async create() {
        const opened = await openMongo(url as string, collection, prefix)
        client = opened.client
        return opened.store
      },
      async dispose() {
        await client
          .db('halt_test')
          .collection(collection)
          .drop()
          .catch(() => {})
        await client.close()
      },
      async inspect(store, ns, id) {
        const doc = await client
          .db('halt_test')
          .collection<{ _id: string; s: number[] }>(collection)
          .findOne({ _id: store.key(ns, id) })
        return doc === null ? undefined : { state: doc.s }
      },
      // What MongoDB's TTL monitor does every 60 s (FerretDB v1 has no TTL indexes), on demand.
      expire: async (store, at) => {
        await store.cleanupExpired(at)
      },
      ...(real ? {} : { stall: (_store: MongoDBStore, ms: number) => pause(servicePid('mongodb'), ms) }),
      // FerretDB v1 applies an update as a read followed by a write, without isolation: it cannot show exactness.
      atomic: real,
      setAtomic: false,
      processes: { module: CLIENTS, args: () => ['mongodb', url as string, collection, prefix] },
    })
  })
}

for (const [label, url, real] of servers) {
  describe.skipIf(url === undefined)(`${label}: what the server guarantees, and the store's own`, () => {
    const collection = `halt_${randomUUID().slice(0, 8)}`
    let opened: Awaited<ReturnType<typeof openMongo>>
    beforeAll(async () => {
      opened = await openMongo(url as string, collection, 'halt:')
    })
    afterAll(async () => {
      await opened.client
        .db('halt_test')
        .collection(collection)
        .drop()
        .catch(() => {})
      await opened.close()
    })

    it(`conditional updates ${real ? 'are' : 'are not always'} isolated: 20 concurrent updateOne on one version (50 rounds)`, async () => {
      const coll = opened.client.db('halt_test').collection<{ _id: string; v: number }>(collection)
      const wins: number[] = []
      for (let round = 0; round < 50; round++) {
        const _id = `race-${round}`
        await coll.insertOne({ _id, v: 0 })
        const results = await Promise.all(Array.from({ length: 20 }, (_, i) => coll.updateOne({ _id, v: 0 }, { $set: { v: i + 1 } })))
        wins.push(results.filter((r) => r.matchedCount === 1).length)
      }
      console.log(`${label}: successful conditional updates per round of 20: ${wins.join(' ')}`)
      expect(Math.min(...wins)).toBeGreaterThanOrEqual(1)
      if (real) expect(Math.max(...wins)).toBe(1)
    })

    it('stores a document: _id, the state (BSON doubles), a random version, the expiry (ms), the TTL field (Date)', async () => {
      const rule = compilePolicy({ name: 'layout', limit: 10, window: 60 })
      const now = Date.now()
      await opened.store.consume(rule.ns, 'user:42', rule, now, 3)
      const doc = await opened.client.db('halt_test').collection<HaltDocument>(collection).findOne({ _id: 'halt:layout:tb:{user:42}' })
      expect(doc?.s).toEqual([0, 7, now])
      expect(doc?.e).toBe(now + 18_000)
      expect(doc?.x).toBeInstanceOf(Date)
      expect((doc?.x as Date).getTime() - (now + 18_000)).toBeGreaterThanOrEqual(0)
      expect((doc?.x as Date).getTime() - (now + 18_000)).toBeLessThan(2_000)
      expect(typeof doc?.v).toBe('number')
    })

    it(real ? 'creates the TTL index on x' : 'falls back to deleting expired documents itself (no TTL indexes on FerretDB v1)', async () => {
      const rule = compilePolicy({ name: 'ttl', limit: 1, window: 60 })
      await opened.store.consume(rule.ns, 'k', rule, Date.now(), 1)
      expect(opened.store.ttlIndex).toBe(real)
      if (real) {
        const indexes = await opened.client.db('halt_test').collection(collection).indexes()
        expect(indexes.find((i) => i.name === 'halt_ttl')).toMatchObject({ key: { x: 1 }, expireAfterSeconds: 0 })
      }
    })

    it('two processes creating one key at once: one inserts, the other meets E11000 and retries on the new document', async () => {
      const rule = compilePolicy({ name: 'dup', limit: 100, window: 60 })
      const others = await Promise.all(Array.from({ length: 4 }, () => openMongo(url as string, collection, 'halt:')))
      for (let round = 0; round < 10; round++) {
        const outs = await Promise.all(others.map((o) => o.store.consume(rule.ns, `new-${round}`, rule, T0, 1)))
        expect(outs.map((o) => o.remaining).sort((a, b) => b - a)).toEqual(real ? [99, 98, 97, 96] : expect.any(Array))
        expect(outs.every((o) => o.allowed)).toBe(true)
      }
      expect(others.reduce((n, o) => n + o.store.counters.conflicts, 0)).toBeGreaterThan(0)
      await Promise.all(others.map((o) => o.close()))
    })
  })
}
