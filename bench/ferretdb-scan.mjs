// What a write costs FerretDB v1.24 (SQLite), by collection size: the reason the MongoDB rows of stores.mjs measure
// document bytes rather than the stores. Each library writes keys through its own code (Halt's MongoDBStore,
// rate-limiter-flexible's RateLimiterMongo) into a collection of N documents it made itself; the table gives the
// server's CPU per write. On real MongoDB a write by _id (Halt) or by a uniquely indexed key (rate-limiter-flexible)
// is an index lookup whatever N; on FerretDB's SQLite backend its cost grows with N: FerretDB hands SQLite a filter only
// when it is exactly { _id: <value> } (the second table), and both libraries' writes filter on more (Halt's { _id, v }) or
// on another field (rate-limiter-flexible's { key }).
// Run from the repository root: npm run build && node bench/ferretdb-scan.mjs   (about 3 minutes)
import { join } from 'node:path'
import { RateLimiter } from 'halt'
import { MongoDBStore } from 'halt/mongodb'
import { MongoClient } from 'mongodb'
import { RateLimiterMongo } from 'rate-limiter-flexible'
import { ownServices, table, treeCpuUs } from './lib.mjs'

const SIZES = [100, 1000, 5000]
const WRITES = 200
const BIG = 1e9

const { services, stop, dir } = ownServices()
try {
  const { stdout } = await services('start', 'mongodb')
  const url = /HALT_TEST_FERRETDB_URL='?([^'\n]+)/.exec(stdout)[1]
  const client = await new MongoClient(url).connect()
  const cpu = () => treeCpuUs(join(dir, 'mongodb/ferretdb.pid'))
  const rows = []
  for (const n of SIZES) {
    const keys = Array.from({ length: n }, (_, i) => `ip:10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`)
    const db = client.db(`scan${n}`)
    const contenders = [
      [
        'rate-limiter-flexible RateLimiterMongo',
        new RateLimiterMongo({ storeClient: client, dbName: `scan${n}`, tableName: 'rlf', points: BIG, duration: 60 }),
      ],
      ['halt MongoDBStore', new RateLimiter({ store: new MongoDBStore({ collection: db.collection('halt') }), policy: { name: 'b', limit: BIG, window: 60 } })],
    ]
    const row = [`${n.toLocaleString('en')} documents`]
    for (const [name, limiter] of contenders) {
      const check = (k) => (limiter instanceof RateLimiter ? limiter.check(k) : limiter.consume(k))
      // The library writes the first key; copies of its document (the identity swapped) fill the collection.
      await check(keys[0])
      const collection = db.collection(name.startsWith('halt') ? 'halt' : 'rlf')
      const first = await collection.findOne({})
      const text = JSON.stringify(first)
      const docs = keys.slice(1).map((k) => {
        const doc = { ...first, ...JSON.parse(text.replaceAll(keys[0], k)), x: first.x, expire: first.expire }
        if (!name.startsWith('halt')) delete doc._id // an ObjectId: the server makes a new one
        return Object.fromEntries(Object.entries(doc).filter(([, v]) => v !== undefined))
      })
      for (let i = 0; i < docs.length; i += 1000) await collection.insertMany(docs.slice(i, i + 1000))
      const sample = Array.from({ length: WRITES }, (_, i) => keys[(i * 7919) % n])
      for (const k of sample) await check(k) // Halt's store now knows these rows (as in stores.mjs, one write each)
      const c0 = cpu()
      for (const k of sample) await check(k)
      row.push(`${Math.round((cpu() - c0) / WRITES)} µs`)
    }
    rows.push(row)
  }
  // Why: FerretDB v1.24's SQLite backend gives SQLite the filter only when it is exactly { _id: <value> }
  // (internal/backends/sqlite/collection.go); any other filter reads and decodes every document. Same collection,
  // same documents (Halt's layout), one call shape per row.
  const shapes = []
  {
    const n = 1000
    const c = client.db('scanshape').collection('docs')
    await c.drop().catch(() => {})
    const now = Date.now()
    const keys = Array.from({ length: n }, (_, i) => `halt:b:tb:{ip:10.0.${i >> 8}.${i & 255}}`)
    const doc = () => ({ s: [0, now + 0.5, 999], v: 7, e: now + 60_000, x: new Date(now + 60_000) })
    await c.insertMany(keys.map((k) => ({ _id: k, ...doc() })))
    const calls = [
      ['findOne({ _id })', (k) => c.findOne({ _id: k })],
      ['findOne({ _id, v })', (k) => c.findOne({ _id: k, v: 7 })],
      ['updateOne({ _id }, $set)', (k) => c.updateOne({ _id: k }, { $set: doc() })],
      ["updateOne({ _id, v }, $set): Halt's compare-and-set", (k) => c.updateOne({ _id: k, v: 7 }, { $set: doc() })],
    ]
    for (const [name, call] of calls) {
      const c0 = cpu()
      for (let i = 0; i < WRITES; i++) await call(keys[(i * 7919) % n])
      shapes.push([name, `${Math.round((cpu() - c0) / WRITES)} µs`])
    }
  }
  await client.close()
  console.log(
    `# FerretDB v1.24.2 (SQLite): server CPU per write, by collection size\n\nnode ${process.version}; ${WRITES} checks of existing keys per cell (each key checked once before)\n`,
  )
  console.log(table(['collection', 'rate-limiter-flexible RateLimiterMongo', 'halt MongoDBStore'], rows))
  console.log(`\n## Server CPU per call by filter, 1,000 documents (${WRITES} calls each)\n`)
  console.log(table(['call', 'server CPU per call'], shapes))
} finally {
  await stop()
}
