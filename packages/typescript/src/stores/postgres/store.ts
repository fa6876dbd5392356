// PostgresStore: one row per key, updated by the compare-and-set loop of ../cas.ts in single statements (one round
// trip when this process's guess of the row is right; under load, one statement for the writes of many keys), and
// under a row lock when a key is contended.
import { HaltConfigError } from '../../core/errors.js'
import { boundedKey, CasStore, type CasStoreOptions, checkPrefix, type Next, newVersion, type Versioned, type Written } from '../cas.js'
import { escapeKeyPart } from '../redis/keys.js'
import { type BatchStatements, batchStatements, createTableSql, likePrefix, packState, quoteTable, type Statements, statements, unpackState } from './sql.js'

/** The parts of a node-postgres (`pg`) result the store reads. */
export interface PgResult {
  rows: Record<string, unknown>[]
  rowCount: number | null
}

/** A query as node-postgres takes it (`name` makes it a prepared statement on each connection). */
export interface PgQuery {
  name?: string
  text: string
  values?: unknown[]
}

/** A connection checked out of a pool. */
export interface PgPoolClient {
  query(q: PgQuery): Promise<PgResult>
  release(error?: Error | boolean): void
}

/** The parts of a `pg.Pool` the store uses (a `pg.Client` works too; a Pool also lets contended keys queue on a row lock). */
export interface PgPoolLike {
  query(q: PgQuery): Promise<PgResult>
  connect?(): Promise<unknown>
}

export interface PostgresStoreOptions extends CasStoreOptions {
  /**
   * A `pg.Pool` (recommended) or a connected `pg.Client`. The store does not own it: end it yourself. With a Pool, a
   * check that lost two compare-and-set rounds to other writers goes on in a transaction holding the row's lock, so
   * the writers of a hot key queue instead of retrying; a single Client cannot hold a transaction for one check while
   * it serves others, so there conflicts are simply retried.
   */
  pool: PgPoolLike
  /** Table name, optionally schema-qualified. Default `'halt_state'`. */
  table?: string
  /** Create the table and its index on first use (`CREATE ... IF NOT EXISTS`). Default true; false for teams that migrate by hand (`createTableSql()`). */
  createTable?: boolean
  /** Prepended to every key (spec/KEYS.md). No `{` or `}`. Default `'halt:'`. */
  prefix?: string
  /** Milliseconds between deletions of expired rows (an unref'd timer; `cleanupExpired()` by hand otherwise). 0 turns it off. Default 60,000. */
  cleanupInterval?: number
  /**
   * While every connection is busy with this store's statements (a Pool's `max`; a Client's one), the checks of other
   * keys that arrive wait, and go together in one statement when one finishes: up to this many keys per statement.
   * With a connection free a check goes at once, so a lone check never waits. `true` (default) is 32; `false` sends one
   * statement per check.
   */
  batch?: boolean | number
}

const CLEANUP_BATCH = 10_000
const DEFAULT_BATCH = 32
const MAX_BATCH = 1000

/** A conditional write: sent at once, or waiting for the next batch. */
interface Pending {
  key: string
  state: Buffer
  expiresAt: number
  now: number
  /** The version the write is conditional on; undefined: an insert (no row, or an expired one). */
  prev: string | undefined
  version: string
  resolve(w: Written<string>): void
  reject(error: unknown): void
}

const byKey = (a: Pending, b: Pending) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)

/**
 * A store in PostgreSQL (9.5+): one row per key in one table. Every check is a compare-and-set: the algorithm runs in
 * this process (the spec's pure function) and the row is written only if nobody wrote it meanwhile. Each write is a
 * single statement that also returns the row when it loses, so a check costs one round trip when this process
 * guessed the row right (a new key, an expired one, or one it wrote last) and two otherwise; a key contended by
 * several writers goes on under a row lock (with a Pool). While every connection is busy, the checks of other keys
 * go together, one statement for many keys (`batch`). Expired rows are deleted every `cleanupInterval`.
 *
 * @example
 * import pg from 'pg'
 * import { RateLimiter } from 'halt'
 * import { PostgresStore } from 'halt/postgres'
 *
 * const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL })
 * const limiter = new RateLimiter({
 *   store: new PostgresStore({ pool }),
 *   policy: { name: 'api', limit: 100, window: '1m' },
 *   timeout: 200,
 * })
 * const d = await limiter.check('user:42')
 */
export class PostgresStore extends CasStore<string> {
  readonly table: string
  readonly prefix: string
  protected override readonly speculation = 'always'
  protected override readonly exclusiveAfter: number
  private readonly pool: PgPoolLike
  /** A Pool (it counts its clients) can lend a connection for a transaction; a single Client cannot. */
  private readonly isPool: boolean
  private readonly sql: Statements
  private readonly names: Record<keyof Statements, string>
  private setup: Promise<void> | undefined
  private readonly createTable: boolean
  private readonly maxBatch: number
  /** Statements this store can have running at once: the Pool's `max` (a Client: 1). */
  private readonly lanes: number
  private inflight = 0
  private queued: Pending[] = []
  /** The batch statements and their names, per number of keys. */
  private readonly batches = new Map<number, BatchStatements & { names: BatchStatements }>()
  private timer: ReturnType<typeof setInterval> | undefined

  constructor(options: PostgresStoreOptions) {
    super(options ?? ({} as PostgresStoreOptions), 'PostgresStore')
    const pool = options?.pool
    if (pool === null || typeof pool !== 'object' || typeof pool.query !== 'function') {
      throw new HaltConfigError(
        'HALT_INVALID_POSTGRES_CLIENT',
        'PostgresStore needs a pg Pool (or a connected pg Client). Fix: new PostgresStore({ pool: new pg.Pool({ connectionString }) }).',
      )
    }
    this.pool = pool
    this.table = options.table ?? 'halt_state'
    quoteTable(this.table)
    this.sql = statements(this.table)
    // Prepared statements, named per table (and per text, so that a changed statement never meets an old plan).
    const tag = hash(`${this.table}\n${Object.values(this.sql).join('\n')}`)
    this.names = Object.fromEntries(Object.keys(this.sql).map((k) => [k, `halt_${k}_${tag}`])) as Record<keyof Statements, string>
    this.prefix = checkPrefix(options.prefix ?? 'halt:', 'PostgresStore')
    this.createTable = options.createTable ?? true
    this.isPool = typeof (pool as { totalCount?: unknown }).totalCount === 'number' && typeof pool.connect === 'function'
    this.exclusiveAfter = this.isPool ? 2 : Number.POSITIVE_INFINITY
    const max = (pool as { options?: { max?: unknown } }).options?.max
    this.lanes = this.isPool ? (typeof max === 'number' && max >= 1 ? max : 10) : 1
    const batch = options.batch ?? true
    this.maxBatch = batch === true ? DEFAULT_BATCH : batch === false ? 1 : batch
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1 || this.maxBatch > MAX_BATCH) {
      throw new HaltConfigError(
        'HALT_INVALID_POSTGRES_BATCH',
        `PostgresStore: batch must be true, false or a whole number of keys from 1 to ${MAX_BATCH}, got ${String(batch)}. Fix: omit it (32).`,
      )
    }
    const interval = options.cleanupInterval ?? 60_000
    if (typeof interval !== 'number' || !(interval >= 0) || !Number.isFinite(interval)) {
      throw new HaltConfigError(
        'HALT_INVALID_CLEANUP_INTERVAL',
        `PostgresStore: cleanupInterval must be milliseconds >= 0, got ${String(options.cleanupInterval)}. Fix: omit it (60000) or 0 to turn the timer off.`,
      )
    }
    if (interval > 0) {
      this.timer = setInterval(() => {
        this.cleanupExpired().catch(() => {}) // a store that is down is the failure policy's business, not the sweep's
      }, interval)
      ;(this.timer as { unref?: () => void }).unref?.()
    }
  }

  /** The row key of `id` under `ns`: spec/KEYS.md, with NUL (which PostgreSQL text cannot hold) written `%00`; hashed beyond 1024 bytes. */
  key(ns: string, id: string): string {
    const key = boundedKey(this.prefix, ns, id)
    return key.includes('\0') ? key.replace(/\0/g, '%00') : key
  }

  /** The table's DDL (what `createTable` runs). */
  createTableSql(): string {
    return createTableSql(this.table)
  }

  /**
   * Delete the rows whose state expired at `now` (default: the latest time this store has seen, less `expiryGraceMs`),
   * in batches of 10,000 through the `expires_min` index. Returns how many were deleted.
   */
  async cleanupExpired(now: number = this.lastNow - this.expiryGraceMs): Promise<number> {
    if (!(now > 0)) return 0
    await this.ready()
    let total = 0
    for (;;) {
      const r = await this.query('cleanup', [now, CLEANUP_BATCH])
      const n = r.rowCount ?? 0
      total += n
      if (n < CLEANUP_BATCH) return total
    }
  }

  /** Rows held (of a namespace, or under the prefix). A count over the table: for tests and dashboards, not hot paths. */
  async size(ns?: string): Promise<number> {
    await this.ready()
    const r = await this.query('count', [likePrefix(this.namespacePrefix(ns))])
    return Number(r.rows[0]?.n ?? 0)
  }

  /** Stop the cleanup timer. The pool stays open: it belongs to the caller. */
  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }

  protected async read(key: string): Promise<Versioned<string> | null> {
    await this.ready()
    const r = await this.query('read', [key])
    return r.rows.length === 0 ? null : record(r.rows[0] as Record<string, unknown>)
  }

  protected async write(key: string, _ns: string, next: Next, prev: Versioned<string> | null): Promise<Written<string>> {
    await this.ready()
    return new Promise((resolve, reject) => {
      const w: Pending = {
        key,
        state: packState(next.state),
        expiresAt: next.expiresAt,
        now: next.now,
        prev: prev?.version,
        version: String(newVersion()),
        resolve,
        reject,
      }
      // Wait for a batch only while a statement of this store is running (its end sends the batch), and either every
      // connection is busy with this store's statements, or the pool has callers waiting for one.
      if (this.inflight > 0 && this.maxBatch > 1 && (this.inflight >= this.lanes || ((this.pool as { waitingCount?: number }).waitingCount ?? 0) > 0)) {
        this.queued.push(w)
      } else this.send([w], w.prev === undefined)
    })
  }

  /** One statement for `list` (distinct keys, all inserts or all updates): the single one, or a batch in key order. */
  private send(list: Pending[], insert: boolean): void {
    const n = list.length
    let q: PgQuery
    if (n === 1) {
      const w = list[0] as Pending
      q = insert
        ? this.statement('insert', [w.key, w.state, w.expiresAt, w.now, w.version])
        : this.statement('update', [w.key, w.state, w.expiresAt, w.prev, w.version])
    } else {
      // Rows are locked in this order: every batch of this store's processes takes its common keys in the same order.
      list.sort(byKey)
      const b = this.batch(n)
      const values: unknown[] = []
      let now = Number.POSITIVE_INFINITY
      for (const w of list) {
        if (insert) {
          values.push(w.key, w.state, w.expiresAt, w.version)
          if (w.now < now) now = w.now
        } else values.push(w.key, w.state, w.expiresAt, w.prev, w.version)
      }
      if (insert) values.push(now)
      q = insert ? { name: b.names.insert, text: b.insert, values } : { name: b.names.update, text: b.update, values }
    }
    this.inflight++
    let sent: Promise<PgResult>
    try {
      sent = this.pool.query(q)
    } catch (error) {
      sent = Promise.reject(error) // a client that throws instead of rejecting: the same failure, and the count kept
    }
    sent.then(
      (r) => {
        this.inflight--
        if (n === 1) (list[0] as Pending).resolve(written(r.rows[0], (list[0] as Pending).version))
        else {
          const rows = new Map<unknown, Record<string, unknown>>()
          for (const row of r.rows) rows.set(row.key, row)
          for (const w of list) w.resolve(written(rows.get(w.key), w.version))
        }
        this.flush()
      },
      (error) => {
        this.inflight--
        // Batches lock their keys in one order; a deadlock with some other writer of several rows is still possible:
        // then each write goes again on its own.
        if (n > 1 && (error as { code?: unknown })?.code === '40P01') for (const w of list) this.send([w], insert)
        else for (const w of list) w.reject(error)
        this.flush()
      },
    )
  }

  /** Send what waits, while connections are free: up to `maxBatch` distinct keys per statement (a repeated key waits for the next). */
  private flush(): void {
    while (this.queued.length > 0 && this.inflight < this.lanes) {
      const inserts: Pending[] = []
      const updates: Pending[] = []
      const rest: Pending[] = []
      const keys = new Set<string>()
      for (const w of this.queued) {
        if (keys.size >= this.maxBatch || keys.has(w.key)) rest.push(w)
        else {
          keys.add(w.key)
          ;(w.prev === undefined ? inserts : updates).push(w)
        }
      }
      this.queued = rest
      if (updates.length > 0) this.send(updates, false)
      if (inserts.length > 0) this.send(inserts, true)
    }
  }

  /** The batch statements for `n` keys (prepared, named per table, text and size). */
  private batch(n: number): BatchStatements & { names: BatchStatements } {
    let b = this.batches.get(n)
    if (b === undefined) {
      const s = batchStatements(this.table, n)
      const tag = hash(`${this.table}\n${s.update}\n${s.insert}`)
      b = { ...s, names: { update: `halt_update${n}_${tag}`, insert: `halt_insert${n}_${tag}` } }
      this.batches.set(n, b)
    }
    return b
  }

  /** The check in a transaction that holds the row's lock: the writers of a hot key queue here instead of racing. */
  protected override async exclusive(key: string, _ns: string, apply: (current: Versioned<string> | null) => Next | null): Promise<void> {
    await this.ready()
    for (;;) {
      const client = (await (this.pool.connect as () => Promise<PgPoolClient>)()) as PgPoolClient
      let broken: Error | undefined
      try {
        await client.query({ text: 'BEGIN' })
        const r = await client.query({ name: this.names.lock, text: this.sql.lock, values: [key] })
        const current = r.rows.length === 0 ? null : record(r.rows[0] as Record<string, unknown>)
        const next = apply(current)
        let done = true
        if (next !== null) {
          const values = [key, packState(next.state), next.expiresAt, String(newVersion())]
          if (current !== null) {
            await client.query({ name: this.names.lockedUpdate, text: this.sql.lockedUpdate, values })
          } else {
            // No row to lock: insert, unless another transaction inserted it first (then lock that row and start over).
            const ins = await client.query({ name: this.names.lockedInsert, text: this.sql.lockedInsert, values })
            done = ins.rows.length > 0
          }
        }
        await client.query({ text: done ? 'COMMIT' : 'ROLLBACK' })
        if (done) return
      } catch (error) {
        broken = error as Error
        await client.query({ text: 'ROLLBACK' }).catch(() => {})
        throw error
      } finally {
        client.release(broken)
      }
    }
  }

  protected async remove(key: string): Promise<void> {
    await this.ready()
    await this.query('delete', [key])
  }

  protected async removeAll(ns?: string): Promise<void> {
    await this.ready()
    await this.query('deleteLike', [likePrefix(this.namespacePrefix(ns))])
  }

  /** Every key of `ns` starts with this (with none: every key of this store). */
  private namespacePrefix(ns?: string): string {
    return ns === undefined ? this.prefix : `${this.prefix}${escapeKeyPart(ns).replace(/\0/g, '%00')}:{`
  }

  private query(name: keyof Statements, values: unknown[]): Promise<PgResult> {
    return this.pool.query(this.statement(name, values))
  }

  /** One of the table's prepared statements, with its values. */
  private statement(name: keyof Statements, values: unknown[]): PgQuery {
    return { name: this.names[name], text: this.sql[name], values }
  }

  /** Create the table on first use (once; again after a failure), under an advisory lock so that processes starting together do not race. */
  private ready(): Promise<void> {
    if (!this.createTable) return Promise.resolve()
    if (this.setup === undefined) {
      this.setup = this.create().catch((error) => {
        this.setup = undefined
        throw error
      })
    }
    return this.setup
  }

  private async create(): Promise<void> {
    const ddl = createTableSql(this.table)
    const lock = `SELECT pg_advisory_xact_lock(${lockId(this.table)})`
    if (this.isPool) {
      const client = (await (this.pool.connect as () => Promise<PgPoolClient>)()) as PgPoolClient
      let broken: Error | undefined
      try {
        await client.query({ text: 'BEGIN' })
        await client.query({ text: lock })
        for (const statement of ddl.split(';\n')) await client.query({ text: statement })
        this.checkLayout(await client.query({ text: this.sql.stateType }))
        await client.query({ text: 'COMMIT' })
      } catch (error) {
        broken = error as Error
        await client.query({ text: 'ROLLBACK' }).catch(() => {})
        throw error
      } finally {
        client.release(broken)
      }
    } else {
      // One Client: a single multi-statement query is one implicit transaction.
      await this.pool.query({ text: `BEGIN; ${lock}; ${ddl} COMMIT;` })
      this.checkLayout(await this.pool.query({ text: this.sql.stateType }))
    }
  }

  /** An existing table of an older layout (`CREATE TABLE IF NOT EXISTS` keeps it) fails here, with the fix, not on every write. */
  private checkLayout(r: PgResult): void {
    const type = (r.rows[0] as { type?: unknown } | undefined)?.type
    if (type === 'bytea') return
    throw new HaltConfigError(
      'HALT_POSTGRES_TABLE_LAYOUT',
      `PostgresStore: table ${this.table} has a state column of type ${String(type)}, made by an older Halt (the state is bytea now). It holds rate-limit state only: drop it (DROP TABLE ${quoteTable(this.table)}) and the store creates it again on first use, or give the store another table.`,
    )
  }
}

/** What a conditional write's returned row says: no row (deleted, or a concurrent insert not visible yet: read again), won, or lost to the row shown. */
function written(row: Record<string, unknown> | undefined, version: string): Written<string> {
  if (row === undefined) return { ok: false, current: undefined }
  if (String(row.version) === version) return { ok: true, version }
  return { ok: false, current: record(row) }
}

function record(row: Record<string, unknown>): Versioned<string> {
  return { state: unpackState(row.state as Uint8Array), version: String(row.version), expiresAt: Number(row.expires_at) }
}

/** A short, stable tag (FNV-1a, base 36). */
function hash(s: string): string {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0
  return h.toString(36)
}

/** The advisory lock id of a table's creation: a 31-bit number derived from its name. */
function lockId(table: string): number {
  let h = 0x811c9dc5
  for (const c of `halt:create:${table}`) h = Math.imul(h ^ (c.codePointAt(0) as number), 0x01000193) >>> 0
  return h & 0x7fffffff
}
