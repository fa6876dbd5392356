// MemcachedStore: one item per key, updated by the compare-and-set loop of ../cas.ts with cas (add for new keys) + gets.
import { HaltConfigError } from '../../core/errors.js'
import { CasStore, type CasStoreOptions, checkPrefix, type Next, newVersion, sameState, type Versioned, type Written } from '../cas.js'
import { globalKey, namespaceKey, stateKey } from './keys.js'

/** One value of a `gets`: the data and its CAS unique. */
export interface MemcachedValue {
  value: unknown
  casUniq?: string | number
}

/**
 * The parts of a `memcache-client` `MemcacheClient` the store uses (another client can be wrapped to this shape).
 * Store commands reject when Memcached answers NOT_STORED, EXISTS or NOT_FOUND. The `gets` sent right behind a write
 * should go on the same connection (memcache-client's default of one connection per server does): on another one it
 * may be answered first, which costs the next check a read (never a wrong count).
 */
export interface MemcachedClientLike {
  /**
   * The items of `keys`, as a record of key to `MemcachedValue` (a missing key absent). Typed `unknown` because
   * memcache-client declares `gets(keys)` as returning one item unless given a type argument; the store reads it as
   * that record.
   */
  gets(keys: string[]): Promise<unknown>
  add(key: string, value: string, options: { lifetime: number }): Promise<unknown>
  cas(key: string, value: string, options: { casUniq: string | number; lifetime: number }): Promise<unknown>
  set(key: string, value: string, options: { lifetime: number }): Promise<unknown>
  delete(key: string): Promise<unknown>
}

export interface MemcachedStoreOptions extends CasStoreOptions {
  /** A `MemcacheClient` of `memcache-client` (it has `gets` and `cas`). The store does not own it: shut it down yourself. */
  client: MemcachedClientLike
  /** Prepended to every key (spec/KEYS.md). No `{`, `}`, space or control characters; at most 100 bytes. Default `'halt:'`. */
  prefix?: string
}

/** The stored value (JSON): state, expiry (limiter's timeline) and the generations it was written under. */
interface Stored {
  s: number[]
  e: number
  g: string
}

/** The version of a record: Memcached's CAS unique (null: no item, `add` it), and the generation its state was read under. */
export interface MemcachedVersion {
  cas: string | null
  g: string
  /**
   * For a record this process wrote: when (epoch ms) Memcached has most likely dropped the item. An item given N seconds
   * goes between N - 1 and N + 1 s later (Memcached's clock ticks in seconds); after N a write expects it gone.
   */
  dropBy?: number
}

const THIRTY_DAYS = 30 * 24 * 3600
/** The latest absolute expiry Memcached takes (its exptime is a signed 32-bit number of seconds). */
const MAX_EXPTIME = 2 ** 31 - 1
/** Most keys in one `gets` (of 250 bytes at most each: well inside what Memcached reads in one command). */
const MAX_READS = 32

/** A read waiting for its `gets`. */
interface Read {
  key: string
  ns: string
  resolve(record: Versioned<MemcachedVersion> | null): void
  reject(error: unknown): void
}

/**
 * A store in Memcached: one item per key, written with `cas` on its CAS unique (or `add` for a new key), and
 * retried when another writer came first. Each write has a `gets` of the item sent right behind it, which tells the
 * next CAS unique (or, after a conflict, the current item): while this process is the key's only writer a check is one
 * round trip (cas + gets), not two (gets, then cas). Items expire by themselves (whole seconds, so each is kept one
 * second longer than its state needs); an expired item still there decides as a missing one.
 *
 * Memcached cannot list keys, so `clear(ns)` and `clear()` work by generations: each namespace, and the store, has a
 * generation item read with every `gets`; a clear replaces it, and items written under an older one count as absent
 * (a write that finds a newer generation behind it goes again). Keys over 250 bytes or with spaces or control
 * characters are hashed (spec/KEYS.md).
 *
 * @example
 * import { MemcacheClient } from 'memcache-client'
 * import { RateLimiter } from 'halt'
 * import { MemcachedStore } from 'halt/memcached'
 *
 * const client = new MemcacheClient({ server: 'localhost:11211' })
 * const limiter = new RateLimiter({ store: new MemcachedStore({ client }), policy: { name: 'api', limit: 100, window: '1m' } })
 */
export class MemcachedStore extends CasStore<MemcachedVersion> {
  protected override readonly speculation = 'always'
  // `add` fails on any item, expired state or not: an idle key's guess goes as `add` only once Memcached has most
  // likely dropped the item (`dropBy`, below).
  protected override readonly insertReplacesExpired = false
  readonly prefix: string
  private readonly client: MemcachedClientLike
  /** The generations seen by the last read of each namespace: a write tags its value with them. */
  private readonly generations = new Map<string, string>()
  /** Reads waiting to go together as one `gets` (their keys, and each generation item once). */
  private pending: Read[] = []
  /** `gets` sent and not answered yet. */
  private readsInFlight = 0

  constructor(options: MemcachedStoreOptions) {
    super(options ?? ({} as MemcachedStoreOptions), 'MemcachedStore')
    const client = options?.client
    if (client === null || typeof client !== 'object' || typeof client.gets !== 'function' || typeof client.cas !== 'function') {
      throw new HaltConfigError(
        'HALT_INVALID_MEMCACHED_CLIENT',
        "MemcachedStore needs a client with gets and cas, such as memcache-client's MemcacheClient. Fix: new MemcachedStore({ client: new MemcacheClient({ server: 'localhost:11211' }) }).",
      )
    }
    this.client = client
    this.prefix = checkPrefix(options.prefix ?? 'halt:', 'MemcachedStore', true)
  }

  /** The Memcached key of `id` under `ns`: spec/KEYS.md's, or its hash when too long or unsafe. */
  key(ns: string, id: string): string {
    return stateKey(this.prefix, ns, id)
  }

  /** The state a key holds (as the store sees it: an item of an older generation is absent), or undefined. */
  async get(ns: string, id: string): Promise<{ state: number[]; expiresAt: number } | undefined> {
    const r = await this.read(this.key(ns, id), ns)
    return r === null || r.state.length === 0 ? undefined : { state: r.state, expiresAt: r.expiresAt }
  }

  /**
   * The key's item and the generation items, in one `gets`. Reads made while another `gets` is in flight wait for the
   * end of this turn of the event loop and go together, up to 32 keys: under load a check's read costs a fraction of
   * a command (and of a socket write); with nothing in flight a read goes at once.
   */
  protected read(key: string, ns: string): Promise<Versioned<MemcachedVersion> | null> {
    return new Promise((resolve, reject) => {
      this.pending.push({ key, ns, resolve, reject })
      if (this.readsInFlight === 0 || this.pending.length >= MAX_READS) this.flushReads()
      else if (this.pending.length === 1) setImmediate(this.flushReads)
    })
  }

  private readonly flushReads = (): void => {
    const reads = this.pending
    if (reads.length === 0) return
    this.pending = []
    this.readsInFlight++
    this.readMany(reads).finally(() => this.readsInFlight--)
  }

  /** One `gets` of the store's generation, each namespace's and every key's item. */
  private async readMany(reads: Read[]): Promise<void> {
    try {
      const gk = globalKey(this.prefix)
      const nks = new Map<string, string>()
      for (const r of reads) if (!nks.has(r.ns)) nks.set(r.ns, namespaceKey(this.prefix, r.ns))
      const keys = [gk, ...new Set(nks.values()), ...reads.map((r) => r.key)]
      for (let attempt = 0; ; attempt++) {
        const got = (await this.client.gets(keys)) as Record<string, MemcachedValue | undefined>
        const g = text(got[gk])
        const missing = [...nks.values()].filter((nk) => text(got[nk]) === undefined)
        if (g === undefined || missing.length > 0) {
          // First use (or a generation item was evicted): start a generation. Items of any earlier one stay absent.
          if (attempt >= 3) throw new Error('MemcachedStore: could not establish the generation items')
          if (g === undefined) await this.client.add(gk, token(), { lifetime: 0 }).catch(notStored)
          for (const nk of new Set(missing)) await this.client.add(nk, token(), { lifetime: 0 }).catch(notStored)
          continue
        }
        for (const r of reads) {
          const generation = `${g}.${text(got[nks.get(r.ns) as string])}`
          this.generations.set(r.ns, generation)
          r.resolve(decode(got[r.key], generation))
        }
        return
      }
    } catch (error) {
      for (const r of reads) r.reject(error)
    }
  }

  /**
   * `cas` (or `add`) and, sent right behind it (one round trip), a `gets` of the key and the generation items: a
   * conflict hands over the current record, and a success the item's new CAS unique, so the next check of the key
   * writes without reading first (`speculation: 'always'`). A write tagged with a generation that is no longer
   * current (a `clear` came first) counts as a conflict: the check goes again on the record as it now is.
   */
  protected async write(key: string, ns: string, next: Next, prev: Versioned<MemcachedVersion> | null): Promise<Written<MemcachedVersion>> {
    // No generation seen yet for the namespace (this process's first write in it), or a record (a guess) of an older
    // generation than the latest seen (a clear came since): read the item first.
    const tag = this.generations.get(ns)
    if (tag === undefined || (prev !== null && prev.version.g !== tag)) return { ok: false }
    const value = JSON.stringify({ s: next.state, e: next.expiresAt, g: tag } satisfies Stored)
    // Whole seconds, rounded up, plus one: Memcached's clock ticks in seconds, so an item given N seconds may go after N - 1.
    let lifetime = Math.ceil(next.ttlMs / 1000) + 1
    // Beyond 30 days Memcached reads an absolute time, a signed 32-bit one: at most 2038-01-19 (later would overflow
    // and drop the item at once).
    if (lifetime > THIRTY_DAYS) lifetime = Math.min(Math.ceil(Date.now() / 1000) + lifetime, MAX_EXPTIME)
    // A guess whose item Memcached has most likely dropped by now (an idle key's): `add`, not a `cas` bound to fail
    // (either way a wrong choice costs one write more: the `gets` behind it hands over the item as it is).
    const gone = prev?.version.dropBy !== undefined && Date.now() >= prev.version.dropBy
    const cas = gone ? null : (prev?.version.cas ?? null)
    const stored = (cas === null ? this.client.add(key, value, { lifetime }) : this.client.cas(key, value, { casUniq: cas, lifetime })).then(
      () => true,
      (error) => {
        if (/NOT_STORED|EXISTS|NOT_FOUND/.test(String((error as Error)?.message))) return false
        throw error
      },
    )
    // Queued behind the write on the connection (with the other reads of this turn of the event loop, in one `gets`).
    const after = this.read(key, ns)
    after.catch(() => {}) // awaited below, unless the write failed
    const ok = await stored
    let now: Versioned<MemcachedVersion> | null
    try {
      now = await after
    } catch {
      return ok ? { ok: true } : { ok: false } // the write's outcome stands; the next check reads first
    }
    if (!ok) return { ok: false, current: now }
    // Gone already (a reset came right after), or read before the write landed (a client that sends it on another
    // connection): the write stands, with no guess for the next one.
    if (now === null) return { ok: true }
    if (now.version.g !== tag) return { ok: false, current: now } // a clear came first: go again on the item as it now is
    // The item holds what was written (if another writer put the same there since, its CAS unique serves as well).
    return now.version.cas !== null && now.expiresAt === next.expiresAt && sameState(now.state, next.state)
      ? { ok: true, version: { ...now.version, dropBy: lifetime > THIRTY_DAYS ? lifetime * 1000 : Date.now() + lifetime * 1000 } }
      : { ok: true }
  }

  protected async remove(key: string): Promise<void> {
    await this.client.delete(key).catch((error) => {
      if (!/NOT_FOUND/.test(String((error as Error)?.message))) throw error
    })
  }

  /** A new generation for `ns` (or for the whole store): every item written before counts as absent, and Memcached evicts it in time. */
  protected async removeAll(ns?: string): Promise<void> {
    const k = ns === undefined ? globalKey(this.prefix) : namespaceKey(this.prefix, ns)
    await this.client.set(k, token(), { lifetime: 0 })
  }
}

/** A key's record from its item of a `gets`: none, absent (an older generation, or unreadable: overwritten with cas), or its state. */
function decode(item: MemcachedValue | undefined, generation: string): Versioned<MemcachedVersion> | null {
  if (item === undefined) return null
  const version = { cas: item.casUniq === undefined ? null : String(item.casUniq), g: generation }
  const stored = parse(text(item))
  if (stored === undefined || stored.g !== generation) return { state: [], version, expiresAt: 0 }
  return { state: stored.s, version, expiresAt: stored.e }
}

/** A new generation: random, 53 bits in base 36. */
function token(): string {
  return newVersion().toString(36)
}

function text(v: MemcachedValue | undefined): string | undefined {
  if (v === undefined || v.value === undefined || v.value === null) return undefined
  return Buffer.isBuffer(v.value) ? v.value.toString('utf8') : String(v.value)
}

function parse(raw: string | undefined): Stored | undefined {
  if (raw === undefined) return undefined
  try {
    const v = JSON.parse(raw) as Stored
    return Array.isArray(v?.s) && typeof v.e === 'number' && typeof v.g === 'string' ? v : undefined
  } catch {
    return undefined
  }
}

function notStored(error: unknown): void {
  if (!/NOT_STORED/.test(String((error as Error)?.message))) throw error
}
