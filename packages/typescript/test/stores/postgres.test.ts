// PostgresStore on a real PostgreSQL: the conformance suite, then what is PostgreSQL's own: the table, round trips,
// the row lock under contention, cleanup of expired rows, options.
import { randomUUID } from 'node:crypto'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { compilePolicy, HaltConfigError } from '../../src/index.js'
import { createTableSql, PostgresStore, type PostgresStoreOptions, unpackState } from '../../src/stores/postgres/index.js'
import { openPostgres } from './cas-clients.js'
import { serverUrl, sleep } from './cas-support.js'
import { storeConformance } from './conformance.js'

const URL = serverUrl('HALT_TEST_POSTGRES_URL')
const T0 = 1_700_000_000_000
const CLIENTS = join(dirname(fileURLToPath(import.meta.url)), 'cas-clients.ts')
const tableFor = (label: string) => `halt_${label}_${randomUUID().slice(0, 8)}`

describe.skipIf(URL === undefined)('PostgreSQL', () => {
  const table = tableFor('conf')
  const prefix = 'halt:'
  let pool: pg.Pool
  let admin: pg.Pool

  storeConformance<PostgresStore>({
    name: 'PostgresStore',
    async create() {
      const opened = await openPostgres(URL as string, table, prefix, 20)
      pool = opened.client
      admin = new pg.Pool({ connectionString: URL, max: 4 })
      return opened.store
    },
    async dispose(store) {
      store.close()
      await admin.query(`DROP TABLE IF EXISTS ${table}`)
      await pool.end()
      await admin.end()
    },
    async inspect(store, ns, id) {
      const r = await admin.query(`SELECT state FROM ${table} WHERE key = $1`, [store.key(ns, id)])
      return r.rows.length === 0 ? undefined : { state: unpackState(r.rows[0].state) }
    },
    expire: async (store, at) => {
      await store.cleanupExpired(at)
    },
    // The table locked by another transaction: every statement on it waits, as on a server that stopped answering.
    async stall(_store, ms) {
      const c = await admin.connect()
      try {
        await c.query('BEGIN')
        await c.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`)
        await sleep(ms)
        await c.query('COMMIT')
      } finally {
        c.release()
      }
    },
    setAtomic: false,
    processes: { module: CLIENTS, args: () => ['postgres', URL as string, table, prefix] },
  })
})

describe.skipIf(URL === undefined)('PostgresStore', () => {
  const table = tableFor('own')
  let admin: pg.Pool
  let opened: Awaited<ReturnType<typeof openPostgres>>
  /** Statements the server ran for this table, from pg_stat_statements' poor cousin: a counting pool. */
  let statements = 0
  beforeAll(async () => {
    admin = new pg.Pool({ connectionString: URL, max: 2 })
    opened = await openPostgres(URL as string, table, 'halt:')
    const query = opened.client.query.bind(opened.client) as (q: unknown) => Promise<unknown>
    ;(opened.client as unknown as { query: (q: unknown) => Promise<unknown> }).query = (q) => {
      statements++
      return query(q)
    }
  })
  afterAll(async () => {
    await admin.query(`DROP TABLE IF EXISTS ${table}`)
    await opened.close()
    await admin.end()
  })

  it('creates the table and index of createTableSql() on first use', async () => {
    const rule = compilePolicy({ name: 'ddl', limit: 10, window: 60 })
    await opened.store.consume(rule.ns, 'user:42', rule, Date.now(), 1)
    const cols = await admin.query(
      `SELECT column_name, data_type, collation_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`,
      [table],
    )
    expect(cols.rows).toEqual([
      { column_name: 'key', data_type: 'text', collation_name: 'C' },
      { column_name: 'state', data_type: 'bytea', collation_name: null },
      { column_name: 'version', data_type: 'bigint', collation_name: null },
      { column_name: 'expires_at', data_type: 'double precision', collation_name: null },
      { column_name: 'expires_min', data_type: 'bigint', collation_name: null },
    ])
    const idx = await admin.query('SELECT indexname FROM pg_indexes WHERE tablename = $1 ORDER BY indexname', [table])
    expect(idx.rows.map((r) => r.indexname)).toEqual([`${table}_expires_min`, `${table}_pkey`])
    expect(createTableSql(table)).toBe(opened.store.createTableSql())
  })

  it('a table of the older layout (state float8[]) fails its first check with the fix (then the failure policy decides)', async () => {
    const old = tableFor('old')
    await admin.query(
      `CREATE TABLE ${old} (key text COLLATE "C" PRIMARY KEY, state float8[] NOT NULL, version bigint NOT NULL, expires_at float8 NOT NULL, expires_min bigint NOT NULL)`,
    )
    const store = new PostgresStore({ pool: admin, table: old, cleanupInterval: 0 })
    const rule = compilePolicy({ name: 'old', limit: 10, window: 60 })
    try {
      const e = await store.consume(rule.ns, 'user:42', rule, T0, 1).catch((x: unknown) => x)
      expect(e).toBeInstanceOf(HaltConfigError)
      expect((e as HaltConfigError).code).toBe('HALT_POSTGRES_TABLE_LAYOUT')
      expect((e as Error).message).toContain(`DROP TABLE "${old}"`)
      await admin.query(`DROP TABLE ${old}`)
      expect((await store.consume(rule.ns, 'user:42', rule, T0, 1)).allowed).toBe(true) // created again, after the failure
      const r = await admin.query(`SELECT state FROM ${old}`)
      expect(unpackState(r.rows[0].state)).toEqual([0, 9, T0]) // token bucket { blocked_until, tokens, last_ms }
    } finally {
      store.close()
      await admin.query(`DROP TABLE IF EXISTS ${old}`)
    }
  })

  it('one statement per check for a new key, an expired one, or one this process wrote last; two after another writer', async () => {
    const rule = compilePolicy({ name: 'rt', limit: 100, window: 60 })
    await opened.store.consume(rule.ns, 'warm', rule, T0, 1)
    let n = statements
    for (let i = 0; i < 10; i++) await opened.store.consume(rule.ns, `new-${i}`, rule, T0, 1) // new keys
    for (let i = 0; i < 10; i++) await opened.store.consume(rule.ns, 'mine', rule, T0 + i, 1) // this process's key
    await opened.store.consume(rule.ns, 'new-0', rule, T0 + 600_000, 1) // long expired
    expect(statements - n).toBe(21)
    const other = await openPostgres(URL as string, table, 'halt:')
    await other.store.consume(rule.ns, 'mine', rule, T0 + 20, 1)
    n = statements
    const o = await opened.store.consume(rule.ns, 'mine', rule, T0 + 21, 1)
    expect(o.remaining).toBe(88)
    expect(statements - n).toBe(2) // the first write lost, and handed back the row: no read
    expect(opened.store.counters.reads).toBe(0)
    await other.close()
  })

  it('writers of a hot key from many processes queue on the row lock after two lost rounds, and admit exactly the limit', async () => {
    const rule = compilePolicy({ name: `hot-${randomUUID().slice(0, 6)}`, limit: 300, window: 3600 })
    const stores = await Promise.all(Array.from({ length: 8 }, () => openPostgres(URL as string, table, 'halt:', 4)))
    await Promise.all(stores.map((s) => s.store.peek(rule.ns, 'warm', rule, T0))) // connected, table checked
    const t0 = performance.now()
    const outs = await Promise.all(stores.flatMap((s) => Array.from({ length: 50 }, (_, i) => s.store.consume(rule.ns, 'hot', rule, T0 + (i % 3), 1))))
    expect(outs.filter((o) => o.allowed).length).toBe(300)
    const locked = stores.reduce((n, s) => n + s.store.counters.locked, 0)
    const conflicts = stores.reduce((n, s) => n + s.store.counters.conflicts, 0)
    console.log(
      `PostgreSQL hot key, 8 stores x 50 checks: ${conflicts} lost writes, ${locked} groups under the row lock, ${Math.round(performance.now() - t0)} ms`,
    )
    await Promise.all(stores.map((s) => s.close()))
  })

  it('cleanupExpired() deletes the rows whose state is back to fresh (through the expires_min index), and only those', async () => {
    const rule = compilePolicy({ name: 'clean', limit: 2, window: 10 })
    await opened.store.consume(rule.ns, 'short', rule, T0, 1) // fresh again at T0 + 5 s
    await opened.store.consume(rule.ns, 'long', rule, T0 + 4_000, 2) // at T0 + 14 s
    await opened.store.cleanupExpired(T0 + 4_999)
    expect(await opened.store.size(rule.ns)).toBe(2)
    expect(await opened.store.cleanupExpired(T0 + 5_000)).toBeGreaterThanOrEqual(1)
    expect(await opened.store.size(rule.ns)).toBe(1)
    await opened.store.cleanupExpired(T0 + 14_000)
    expect(await opened.store.size(rule.ns)).toBe(0)
    await admin.query('SET enable_seqscan = off') // a table this small is scanned whole otherwise: ask whether the index serves
    const plan = await admin.query(
      `EXPLAIN DELETE FROM ${table} WHERE ctid = ANY (ARRAY(SELECT ctid FROM ${table} WHERE expires_min <= 0 AND expires_at <= 1 LIMIT 10))`,
    )
    await admin.query('RESET enable_seqscan')
    expect(JSON.stringify(plan.rows)).toMatch(/Index.*expires_min/)
  })

  it('checks are HOT updates (no new index entries) while the expiry stays in the same minute', async () => {
    const own = tableFor('hot')
    const hot = await openPostgres(URL as string, own, 'halt:', 1)
    try {
      // A token bucket: every check moves expires_at (full again 1 ms later), all within one minute.
      const rule = compilePolicy({ name: 'hot', limit: 1e9, window: 3600 })
      const at = Math.floor(Date.now() / 60_000) * 60_000
      for (let i = 0; i < 20; i++) await hot.store.consume(rule.ns, 'k', rule, at + i, 1)
      const row = await admin.query(`SELECT expires_at, expires_min FROM ${own}`)
      expect(Number(row.rows[0].expires_at)).toBe(at + 20)
      expect(Number(row.rows[0].expires_min)).toBe(Math.floor(Number(row.rows[0].expires_at) / 60_000))
      await hot.close() // a backend publishes its table statistics when it exits (or up to 10 s after going idle)
      await vi.waitFor(
        async () => {
          const s = await admin.query('SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = $1', [own])
          expect(Number(s.rows[0]?.n_tup_upd)).toBe(19)
          expect(Number(s.rows[0]?.n_tup_hot_upd)).toBe(19)
        },
        { timeout: 5_000, interval: 200 },
      )
    } finally {
      await admin.query(`DROP TABLE IF EXISTS ${own}`)
      await hot.close().catch(() => {}) // closed already when the test got that far
    }
  })

  it('keys: NUL written %00 (PostgreSQL text cannot hold it), keys over 1024 bytes hashed under their namespace', async () => {
    const rule = compilePolicy({ name: 'keys', limit: 1, window: 60 })
    expect(opened.store.key(rule.ns, 'a\0b')).toBe('halt:keys:tb:{a%00b}')
    expect(opened.store.key(rule.ns, 'a%00b')).toBe('halt:keys:tb:{a%2500b}')
    const long = opened.store.key(rule.ns, 'x'.repeat(2000))
    expect(long).toMatch(/^halt:keys:tb:\{%#[A-Za-z0-9_-]{43}\}$/)
    expect(opened.store.key(rule.ns, '%#abc')).toBe('halt:keys:tb:{%25#abc}')
    const random = Array.from({ length: 3000 }, () => String.fromCharCode(33 + Math.floor(Math.random() * 90))).join('')
    expect((await opened.store.consume(rule.ns, random, rule, T0, 1)).allowed).toBe(true)
    expect((await opened.store.consume(rule.ns, random, rule, T0, 1)).allowed).toBe(false)
  })

  it('with createTable: false nothing is created (teams that migrate by hand), and a missing table is an error', async () => {
    const t = tableFor('manual')
    const store = new PostgresStore({ pool: admin, table: t, createTable: false, cleanupInterval: 0 })
    const rule = compilePolicy({ name: 'm', limit: 1, window: 60 })
    await expect(store.consume(rule.ns, 'k', rule, T0, 1)).rejects.toThrow(/does not exist/)
    await admin.query(createTableSql(t))
    expect((await store.consume(rule.ns, 'k', rule, T0, 1)).allowed).toBe(true)
    await admin.query(`DROP TABLE ${t}`)
  })

  /** A store on a pool of `max` connections whose statements are recorded (their names) as they are sent. */
  async function recording(max: number, options?: pg.PoolConfig) {
    const pool = new pg.Pool({ connectionString: URL, max, ...options })
    const names: string[] = []
    const query = pool.query.bind(pool) as (q: unknown) => Promise<unknown>
    ;(pool as unknown as { query: (q: unknown) => Promise<unknown> }).query = (q) => {
      names.push(String((q as { name?: unknown }).name))
      return query(q)
    }
    return { pool, names, store: new PostgresStore({ pool, table, cleanupInterval: 0 }) }
  }

  it('while every connection is busy, the checks of other keys go together: one statement per batch, each key exact', async () => {
    const { pool, names, store } = await recording(2)
    try {
      const rule = compilePolicy({ name: `batch-${randomUUID().slice(0, 6)}`, limit: 2, window: 3600 })
      await store.peek(rule.ns, 'warm', rule, T0) // table checked
      names.length = 0
      // 3 checks of each of 60 keys, all at once: new keys (inserts), then rows this store wrote (updates).
      const outs = await Promise.all(Array.from({ length: 180 }, (_, i) => store.consume(rule.ns, `k${i % 60}`, rule, T0, 1)))
      for (let k = 0; k < 60; k++) expect(outs.filter((_, i) => i % 60 === k).map((o) => o.allowed)).toEqual([true, true, false])
      const batches = names.filter((n) => /^halt_(insert|update)\d+_/.test(n))
      expect(batches.length).toBeGreaterThan(0)
      expect(names.length).toBeLessThan(60) // 120 writes (the third check of a key changes nothing)
      expect(store.counters.writes).toBe(120)
      expect(store.counters.conflicts).toBe(0)
      // The rows are what single statements would have written.
      const r = await admin.query(`SELECT key, state FROM ${table} WHERE key LIKE $1 ORDER BY key`, [`halt:${rule.ns}:{k%`])
      expect(r.rows.length).toBe(60)
      for (const row of r.rows) expect(unpackState(row.state)).toEqual([0, 0, T0])
      // One at a time, nothing waits: single statements.
      names.length = 0
      for (let i = 0; i < 5; i++) await store.consume(rule.ns, `lone${i}`, rule, T0, 1)
      expect(names.every((n) => /^halt_insert_/.test(n))).toBe(true)
    } finally {
      store.close()
      await pool.end()
    }
  })

  it('on a single pg.Client (no pool): the table made in one implicit transaction, and checks batched while one runs', async () => {
    const own = tableFor('client')
    const client = new pg.Client({ connectionString: URL })
    await client.connect()
    const names: string[] = []
    const query = client.query.bind(client) as (q: unknown) => Promise<unknown>
    ;(client as unknown as { query: (q: unknown) => Promise<unknown> }).query = (q) => {
      names.push(String((q as { name?: unknown }).name))
      return query(q)
    }
    const store = new PostgresStore({ pool: client, table: own, cleanupInterval: 0 })
    try {
      const rule = compilePolicy({ name: 'client', limit: 1, window: 3600 })
      const outs = await Promise.all(Array.from({ length: 60 }, (_, i) => store.consume(rule.ns, `k${i % 30}`, rule, T0, 1)))
      expect(outs.map((o) => o.allowed)).toEqual(Array.from({ length: 60 }, (_, i) => i < 30))
      expect(names.some((n) => /^halt_insert\d+_/.test(n))).toBe(true)
      expect((await admin.query(`SELECT count(*)::int AS n FROM ${own}`)).rows[0].n).toBe(30)
    } finally {
      store.close()
      await client.end()
      await admin.query(`DROP TABLE IF EXISTS ${own}`)
    }
  })

  it('a batch that loses some rows to another writer gets them back and retries those; an insert batch overwrites expired rows', async () => {
    const a = await recording(1)
    const b = await recording(1)
    try {
      const rule = compilePolicy({ name: `race-${randomUUID().slice(0, 6)}`, limit: 5, window: 10 })
      await Promise.all(Array.from({ length: 20 }, (_, i) => a.store.consume(rule.ns, `k${i}`, rule, T0, 1))) // 20 rows, by a
      await Promise.all(Array.from({ length: 10 }, (_, i) => b.store.consume(rule.ns, `k${i}`, rule, T0, 1))) // b moves half
      a.names.length = 0
      // a's guesses of k0..k9 are stale now: those writes lose inside the batch, come back with b's rows, and go again.
      const outs = await Promise.all(Array.from({ length: 20 }, (_, i) => a.store.consume(rule.ns, `k${i}`, rule, T0, 1)))
      expect(outs.map((o) => o.remaining)).toEqual(Array.from({ length: 20 }, (_, i) => (i < 10 ? 2 : 3)))
      expect(a.store.counters.conflicts).toBe(10)
      expect(a.names.some((n) => /^halt_update\d+_/.test(n))).toBe(true)
      // Long after: every row expired; b (which holds no guess for k10..k19) inserts over them in batches.
      b.names.length = 0
      const later = await Promise.all(Array.from({ length: 20 }, (_, i) => b.store.consume(rule.ns, `k${i}`, rule, T0 + 3_600_000, 1)))
      expect(later.map((o) => o.remaining)).toEqual(new Array(20).fill(4))
      expect(b.names.some((n) => /^halt_insert\d+_/.test(n))).toBe(true)
    } finally {
      a.store.close()
      b.store.close()
      await Promise.all([a.pool.end(), b.pool.end()])
    }
  })

  it('a pool whose query throws instead of rejecting fails that check only; the store goes on', async () => {
    const { pool, store } = await recording(2)
    try {
      const rule = compilePolicy({ name: `throw-${randomUUID().slice(0, 6)}`, limit: 5, window: 3600 })
      await store.peek(rule.ns, 'warm', rule, T0)
      const query = pool.query
      ;(pool as unknown as { query: () => never }).query = () => {
        throw new Error('broken client')
      }
      // As many failures as the pool has connections: a count of running statements left behind would stall the rest.
      for (const id of ['a', 'b']) await expect(store.consume(rule.ns, id, rule, T0, 1)).rejects.toThrow('broken client')
      pool.query = query
      const outs = await Promise.all(Array.from({ length: 10 }, (_, i) => store.consume(rule.ns, `k${i}`, rule, T0, 1)))
      expect(outs.map((o) => o.remaining)).toEqual(new Array(10).fill(4))
    } finally {
      store.close()
      await pool.end()
    }
  })

  it('a batch that deadlocks with another transaction goes again key by key: no check fails', async () => {
    // The store's session detects deadlocks first (100 ms against the default 1 s), so the batch is the one aborted.
    const { pool, names, store } = await recording(1, { options: '-c deadlock_timeout=100ms' })
    const other = await admin.connect()
    try {
      const rule = compilePolicy({ name: `dl-${randomUUID().slice(0, 6)}`, limit: 100, window: 3600 })
      for (const id of ['a', 'b', 'c']) await store.consume(rule.ns, id, rule, T0, 1)
      const deadlocks = async () => Number((await admin.query('SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()')).rows[0].deadlocks)
      const before = await deadlocks()
      await other.query('BEGIN')
      await other.query(`UPDATE ${table} SET version = version + 1 WHERE key = $1`, [store.key(rule.ns, 'b')]) // holds b
      names.length = 0
      // c goes alone; a and b wait for it, then go as one batch that locks a, and waits for b.
      const checks = ['c', 'a', 'b'].map((id) => store.consume(rule.ns, id, rule, T0, 1))
      await vi.waitFor(() => expect(names.some((n) => /^halt_update2_/.test(n))).toBe(true))
      await sleep(20)
      // Now this transaction waits for a, which the batch holds: a deadlock, which aborts the batch.
      const mine = other.query(`UPDATE ${table} SET version = version + 1 WHERE key = $1`, [store.key(rule.ns, 'a')])
      await mine
      await other.query('COMMIT')
      const outs = await Promise.all(checks)
      expect(outs.map((o) => o.allowed)).toEqual([true, true, true])
      expect(outs.map((o) => o.remaining)).toEqual([98, 98, 98])
      expect(names.filter((n) => /^halt_update_/.test(n)).length).toBeGreaterThanOrEqual(3) // c, then a and b again alone
      // A backend publishes its statistics when it exits (or up to 10 s after going idle): close the store's pool first.
      await pool.end()
      await vi.waitFor(async () => expect(await deadlocks()).toBe(before + 1), { timeout: 5_000, interval: 100 })
    } finally {
      await other.query('ROLLBACK').catch(() => {})
      other.release()
      store.close()
      if (!pool.ended) await pool.end()
    }
  })

  it('rejects bad options at construction', () => {
    const bad: [Partial<PostgresStoreOptions>, string][] = [
      [{ pool: undefined as never }, 'HALT_INVALID_POSTGRES_CLIENT'],
      [{ table: 'halt; DROP TABLE x' }, 'HALT_INVALID_POSTGRES_TABLE'],
      [{ table: 'a.b.c' }, 'HALT_INVALID_POSTGRES_TABLE'],
      [{ prefix: 'a{' }, 'HALT_INVALID_STORE_PREFIX'],
      [{ maxAttempts: 0 }, 'HALT_INVALID_CAS_ATTEMPTS'],
      [{ expiryGraceMs: -1 }, 'HALT_INVALID_EXPIRY_GRACE'],
      [{ cleanupInterval: -5 }, 'HALT_INVALID_CLEANUP_INTERVAL'],
      [{ batch: 0 }, 'HALT_INVALID_POSTGRES_BATCH'],
      [{ batch: 2.5 }, 'HALT_INVALID_POSTGRES_BATCH'],
      [{ batch: 'yes' as never }, 'HALT_INVALID_POSTGRES_BATCH'],
    ]
    for (const [options, code] of bad) {
      let error: unknown
      try {
        new PostgresStore({ pool: admin, cleanupInterval: 0, ...options })
      } catch (e) {
        error = e
      }
      expect(error, code).toBeInstanceOf(HaltConfigError)
      expect((error as HaltConfigError).code).toBe(code)
    }
  })
})
