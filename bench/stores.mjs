// Store benchmark: checks/s of Halt's PostgreSQL, MongoDB, DynamoDB and Memcached stores beside rate-limiter-flexible's
// store for the same database (RateLimiterPostgres, RateLimiterMongo, RateLimiterDynamo, RateLimiterMemcache), on the
// same server, at 1 and 50 checks in flight over 10k keys (and 50 in flight on one hot key), alternating rounds,
// medians. Starts its own servers with scripts/services.sh (PostgreSQL, Memcached, FerretDB for MongoDB, moto for
// DynamoDB) in a state directory of its own, and stops them.
// Run from the repository root: npm run build && node bench/stores.mjs   (BENCH_ROUNDS, BENCH_MS, BENCH_STORES=postgres,memcached)
import { join } from 'node:path'
import { DynamoDB, DynamoDBClient } from '@aws-sdk/client-dynamodb'
import { compilePolicy, RateLimiter } from 'halt'
import { createDynamoTable, DynamoDBStore } from 'halt/dynamodb'
import { MemcachedStore } from 'halt/memcached'
import { MongoDBStore } from 'halt/mongodb'
import { createTableSql, PostgresStore, packState } from 'halt/postgres'
import { MemcacheClient } from 'memcache-client'
import Memcached from 'memcached'
import { MongoClient } from 'mongodb'
import pg from 'pg'
import { RateLimiterDynamo, RateLimiterMemcache, RateLimiterMongo, RateLimiterPostgres } from 'rate-limiter-flexible'
import { fmtRate, median, ownServices, table, treeCpuUs } from './lib.mjs'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const ROUND_MS = Number(process.env.BENCH_MS ?? 1000)
const ONLY = process.env.BENCH_STORES?.split(',')
const BIG = 1e9 // a limit nobody reaches: the admission path (a write per check) is measured
const KEYS = Array.from({ length: 10_000 }, (_, i) => `ip:10.0.${i >> 8}.${i & 255}`)
const SCENARIOS = [
  { inflight: 1, keys: 10_000 },
  { inflight: 50, keys: 10_000 },
  { inflight: 50, keys: 1 },
]
const label = (s) => `${s.inflight} in flight, ${s.keys === 1 ? '1 hot key' : '10k keys'}`

const { services, stop, dir: servicesDir } = ownServices()

const rlfCheck = (limiter) => (key) =>
  limiter.consume(key).then(
    () => true,
    (r) => {
      if (r instanceof Error) throw r
      return false
    },
  )
const haltCheck = (store) => {
  const limiter = new RateLimiter({ store, policy: { name: 'b', limit: BIG, window: 60 }, timeout: 10_000 })
  return (key) => limiter.check(key)
}
const ready = (make) => new Promise((resolve, reject) => make((err) => (err ? reject(err) : resolve())))

/** The server's pid file in our services directory (PostgreSQL: the postmaster; its backends are its children). */
const PID_FILES = {
  postgres: 'postgres/data/postmaster.pid',
  memcached: 'memcached/memcached.pid',
  mongodb: 'mongodb/ferretdb.pid',
  dynamodb: 'dynamodb/dynamodb.pid',
}

const serverCpuUs = (name) => treeCpuUs(join(servicesDir, PID_FILES[name]))

/** The text of every named (prepared) statement sent through `pool`, by name, as it is sent. */
function recordStatements(pool) {
  const texts = new Map()
  const query = pool.query.bind(pool)
  pool.query = (config, ...rest) => {
    if (config !== null && typeof config === 'object' && typeof config.name === 'string') texts.set(config.name, config.text)
    return query(config, ...rest)
  }
  return texts
}

/** The one recorded statement whose name matches `pattern`, moved to `table` (the libraries quote it as "name"). */
function recorded(texts, pattern, from, table) {
  const name = [...texts.keys()].find((n) => pattern.test(n))
  if (name === undefined) throw new Error(`no statement ${pattern} was recorded (${[...texts.keys()].join(', ')})`)
  return { name: `raw_${name}`, text: texts.get(name).replaceAll(from, table) }
}

/** rate-limiter-flexible's upsert, raw: `consume(key)` without the library. */
async function rawRlfStatement(pool, texts) {
  await pool.query('DROP TABLE IF EXISTS rlf_raw')
  await pool.query('CREATE TABLE rlf_raw (key varchar(255) PRIMARY KEY, points integer NOT NULL DEFAULT 0, expire bigint)')
  const statement = recorded(texts, /rlflx-upsert$/, 'rlf_bench', 'rlf_raw')
  return (key) => {
    const now = Date.now()
    return pool.query({ ...statement, values: [`rlflx:${key}`, 1, now + 60_000, now] })
  }
}

/** Halt's compare-and-set update, raw, on rows inserted first: each write names the version the previous one set. */
async function rawHaltStatement(pool, texts) {
  await pool.query('DROP TABLE IF EXISTS halt_raw')
  await pool.query(createTableSql('halt_raw'))
  const versions = new Map(KEYS.map((k) => [k, '1']))
  await pool.query(`INSERT INTO halt_raw (key, state, version, expires_at, expires_min) SELECT k, '', 1, 0, 0 FROM unnest($1::text[]) AS k`, [KEYS])
  const statement = recorded(texts, /^halt_update_/, '"halt_bench"', '"halt_raw"')
  let tokens = BIG
  return async (key) => {
    const now = Date.now()
    const version = String(Math.floor(Math.random() * 2 ** 53))
    const r = await pool.query({ ...statement, values: [key, packState([0, --tokens, now]), now + 60_000, versions.get(key), version] })
    versions.set(key, String(r.rows[0]?.version ?? version))
  }
}

/** Per store: how to reach the server, and the contenders on it (rate-limiter-flexible's first, Halt's second). */
const STORES = {
  postgres: {
    title: 'PostgreSQL (Debian postgresql)',
    env: 'HALT_TEST_POSTGRES_URL',
    async contenders(url) {
      const pools = [new pg.Pool({ connectionString: url, max: 20 }), new pg.Pool({ connectionString: url, max: 20 })]
      let rlf
      await ready((cb) => {
        rlf = new RateLimiterPostgres({ storeClient: pools[0], storeType: 'pool', tableName: 'rlf_bench', points: BIG, duration: 60 }, cb)
      })
      // Each library's own write statement, sent raw on a pool of the same size (the text as the library sent it, to a
      // table of its own): what the SQL costs without the library around it. Over 10k keys only (on one hot key the raw
      // compare-and-set would lose most writes).
      const texts = pools.map(recordStatements)
      const raw = new pg.Pool({ connectionString: url, max: 20 })
      for (const p of [...pools, raw]) p.on('error', () => {}) // idle connections closed when the server stops
      pools.push(raw)
      const store = new PostgresStore({ pool: pools[1], table: 'halt_bench', cleanupInterval: 0 })
      const [rlfC, haltC] = [rlfCheck(rlf), haltCheck(store)]
      for (const check of [rlfC, haltC]) await check(KEYS[0])
      // Halt's update statement, for the raw row: a second write of a key at the same instant (its state still live;
      // with a limit nobody reaches, a token bucket is full again within a millisecond, and a check then inserts).
      const rule = compilePolicy({ name: 'b', limit: BIG, window: 60 })
      for (let i = 0, t = Date.now(); i < 2; i++) await store.consume(rule.ns, 'warm', rule, t, 1)
      return {
        contenders: [
          ['rate-limiter-flexible RateLimiterPostgres', rlfC],
          ['halt PostgresStore', haltC],
          ['raw: its upsert alone', await rawRlfStatement(raw, texts[0]), { manyKeysOnly: true }],
          ['raw: its compare-and-set alone', await rawHaltStatement(raw, texts[1]), { manyKeysOnly: true }],
        ],
        close: () => Promise.all(pools.map((p) => p.end())),
      }
    },
  },
  memcached: {
    title: 'Memcached (Debian memcached)',
    env: 'HALT_TEST_MEMCACHED_URL',
    async contenders(url) {
      // Each client as its library sets it up by default: rate-limiter-flexible takes the `memcached` package's client
      // (a pool of up to 10 connections), memcache-client opens one connection (more measured slower here: the
      // client's CPU, not the connection, is what runs out).
      const legacy = new Memcached(url)
      const client = new MemcacheClient({ server: url })
      return {
        contenders: [
          [
            'rate-limiter-flexible RateLimiterMemcache',
            rlfCheck(new RateLimiterMemcache({ storeClient: legacy, points: BIG, duration: 60, keyPrefix: 'rlf' })),
          ],
          ['halt MemcachedStore', haltCheck(new MemcachedStore({ client, prefix: 'bench:' }))],
        ],
        close: async () => {
          legacy.end()
          client.shutdown()
        },
      }
    },
  },
  mongodb: {
    title: 'MongoDB wire protocol (FerretDB v1.24.2 on SQLite: no real MongoDB here)',
    env: 'HALT_TEST_FERRETDB_URL',
    async contenders(url) {
      const clients = [await new MongoClient(url).connect(), await new MongoClient(url).connect()]
      const rlf = new RateLimiterMongo({ storeClient: clients[0], dbName: 'bench', tableName: 'rlf', points: BIG, duration: 60 })
      return {
        contenders: [
          ['rate-limiter-flexible RateLimiterMongo', rlfCheck(rlf)],
          ['halt MongoDBStore', haltCheck(new MongoDBStore({ collection: clients[1].db('bench').collection('halt') }))],
        ],
        close: () => Promise.all(clients.map((c) => c.close())),
      }
    },
  },
  dynamodb: {
    title: 'DynamoDB API (moto server: DynamoDB Local is not used here)',
    env: 'HALT_TEST_DYNAMODB_URL',
    async contenders(url) {
      const config = { endpoint: url, region: 'us-east-1', credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' } }
      const client = new DynamoDBClient(config)
      const aggregated = new DynamoDB(config) // rate-limiter-flexible wants the aggregated client
      let rlf
      await ready((cb) => {
        rlf = new RateLimiterDynamo({ storeClient: aggregated, tableName: 'rlf_bench', points: BIG, duration: 60 }, cb)
      })
      await createDynamoTable(client, { table: 'halt_bench' })
      return {
        contenders: [
          ['rate-limiter-flexible RateLimiterDynamo', rlfCheck(rlf)],
          ['halt DynamoDBStore', haltCheck(new DynamoDBStore({ client, table: 'halt_bench' }))],
        ],
        close: async () => {
          client.destroy()
          aggregated.destroy()
        },
      }
    },
  },
}

/** Checks per second with `inflight` loops, each awaiting one check after another, for `ms`; and the server's and this process's CPU per check. */
async function throughput(name, check, inflight, keys, ms) {
  let n = 0
  const server0 = serverCpuUs(name)
  const cpu0 = process.cpuUsage()
  const end = performance.now() + ms
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: inflight }, async (_, w) => {
      for (let i = w * 97; performance.now() < end; i += 1, n++) await check(KEYS[i % keys])
    }),
  )
  const rate = n / ((performance.now() - t0) / 1000)
  const cpu = process.cpuUsage(cpu0)
  return { rate, serverUs: (serverCpuUs(name) - server0) / n, clientUs: (cpu.user + cpu.system) / n }
}

const names = Object.keys(STORES).filter((n) => ONLY === undefined || ONLY.includes(n))
const targets = []
try {
  const { stdout } = await services('start', ...names)
  console.log(
    `# Store benchmark\n\nnode ${process.version}, servers on loopback, ${ROUNDS} alternating rounds of ${ROUND_MS} ms, medians; limit never reached\n`,
  )
  for (const name of names) {
    const s = STORES[name]
    const url = new RegExp(`${s.env}='?([^'\\n]+)`).exec(stdout)[1]
    const { contenders, close } = await s.contenders(url)
    const results = new Map()
    const costs = new Map()
    for (const sc of SCENARIOS) {
      const here = contenders.filter(([, , o]) => sc.keys > 1 || o?.manyKeysOnly !== true)
      const samples = new Map(here.map(([n]) => [n, []]))
      for (const [, check] of here) await throughput(name, check, sc.inflight, sc.keys, 300) // warm up
      for (let r = 0; r < ROUNDS; r++) {
        for (const [n, check] of here) samples.get(n).push(await throughput(name, check, sc.inflight, sc.keys, ROUND_MS))
      }
      results.set(sc, new Map([...samples].map(([k, v]) => [k, median(v.map((x) => x.rate))])))
      costs.set(sc, new Map([...samples].map(([k, v]) => [k, { serverUs: median(v.map((x) => x.serverUs)), clientUs: median(v.map((x) => x.clientUs)) }])))
    }
    await close()
    const [rlfName, haltName] = contenders.map(([n]) => n)
    console.log(`## ${s.title}\n`)
    console.log(
      table(
        ['contender', ...SCENARIOS.map(label)],
        contenders.map(([n]) => [
          n,
          ...SCENARIOS.map((sc) =>
            results.get(sc).has(n) ? `${fmtRate(results.get(sc).get(n))} (${(results.get(sc).get(n) / results.get(sc).get(rlfName)).toFixed(2)}x)` : '-',
          ),
        ]),
      ),
    )
    console.log('\nCPU per check: the server (its processes, from /proc) + this process, µs\n')
    console.log(
      table(
        ['contender', ...SCENARIOS.map(label)],
        contenders.map(([n]) => [
          n,
          ...SCENARIOS.map((sc) => {
            const c = costs.get(sc).get(n)
            return c === undefined ? '-' : `${c.serverUs.toFixed(0)} + ${c.clientUs.toFixed(0)}`
          }),
        ]),
      ),
    )
    console.log()
    for (const sc of SCENARIOS.slice(0, 2)) {
      const ratio = results.get(sc).get(haltName) / results.get(sc).get(rlfName)
      targets.push([`${haltName} / ${rlfName}, ${label(sc)}`, ratio.toFixed(2), '1.00', ratio >= 1 ? 'met' : 'NOT met'])
    }
  }
  console.log("## Targets: at least rate-limiter-flexible's throughput on the same server\n")
  console.log(table(['ratio', 'measured', 'target', ''], targets))
} finally {
  await stop()
}
