// MongoDBStore: one document per key, updated by the compare-and-set loop of ../cas.ts on a random version field.
import { HaltConfigError } from '../../core/errors.js'
import { boundedKey, CasStore, type CasStoreOptions, checkPrefix, type Next, newVersion, type Versioned, type Written } from '../cas.js'
import { escapeKeyPart } from '../redis/keys.js'

/** A stored document. `_id` is the key of spec/KEYS.md. */
export interface HaltDocument {
  _id: string
  /** The algorithm's state: the spec's flat array of numbers (BSON doubles, exact). */
  s: number[]
  /** A random number, new with every write: the compare-and-set condition. */
  v: number
  /** When the state is back to fresh: epoch ms in the limiter's timeline. */
  e: number
  /** When the server may delete the document (the TTL index's field): this process's clock + the TTL + the grace. */
  x: Date
}

/** The parts of the official driver's `Collection` the store uses. */
export interface MongoCollectionLike {
  findOne(filter: object, options?: object): Promise<unknown>
  updateOne(filter: object, update: object, options?: object): Promise<{ matchedCount: number; upsertedCount: number }>
  deleteOne(filter: object): Promise<unknown>
  deleteMany(filter: object): Promise<{ deletedCount: number }>
  countDocuments(filter: object): Promise<number>
  createIndex(spec: never, options?: never): Promise<string>
}

export interface MongoDBStoreOptions extends CasStoreOptions {
  /**
   * A collection of the official `mongodb` driver, e.g. `client.db('app').collection('halt_state')`. The store does not
   * own the client: close it yourself.
   */
  collection: MongoCollectionLike
  /**
   * Create the TTL index on `x` on first use. Default true; false when you manage indexes yourself (docs/stores.md).
   * A server without TTL indexes (FerretDB v1) answers "not implemented": the store then deletes expired documents
   * itself every `cleanupInterval`.
   */
  createIndexes?: boolean
  /**
   * Milliseconds between deletions of expired documents by this process (`cleanupExpired()`, an unref'd timer). Default
   * 0 (off: the TTL index does it), and 60,000 when the server turned the TTL index down.
   */
  cleanupInterval?: number
  /** Prepended to every key (spec/KEYS.md). No `{` or `}`. Default `'halt:'`. */
  prefix?: string
}

const PROJECTION = { projection: { s: 1, v: 1, e: 1 } }

/**
 * A store in MongoDB: one document per key. Every check reads the document, runs the algorithm in this process (the
 * spec's pure function), and writes it back only if its version is still the one read (a single-document update,
 * atomic in MongoDB); a conflict, or a duplicate key (E11000) when two checks create a key at once, is retried.
 * Idle documents are deleted by a TTL index on `x`; an expired document that is still there decides as a missing one.
 *
 * @example
 * import { MongoClient } from 'mongodb'
 * import { RateLimiter } from 'halt'
 * import { MongoDBStore } from 'halt/mongodb'
 *
 * const client = await new MongoClient(process.env.MONGODB_URL!).connect()
 * const limiter = new RateLimiter({
 *   store: new MongoDBStore({ collection: client.db('app').collection('halt_state') }),
 *   policy: { name: 'api', limit: 100, window: '1m' },
 *   timeout: 200,
 * })
 * const d = await limiter.check('user:42')
 */
export class MongoDBStore extends CasStore<number> {
  readonly prefix: string
  // A lost updateOne says only "no match": guess the record (skip the read) while guesses mostly hit.
  protected override readonly speculation = 'adaptive'
  private readonly collection: MongoCollectionLike
  private readonly createIndexes: boolean
  private setup: Promise<void> | undefined
  private timer: ReturnType<typeof setInterval> | undefined
  /** False once the server turned the TTL index down (FerretDB v1). */
  ttlIndex: boolean | undefined

  constructor(options: MongoDBStoreOptions) {
    super(options ?? ({} as MongoDBStoreOptions), 'MongoDBStore')
    const c = options?.collection
    if (c === null || typeof c !== 'object' || typeof c.updateOne !== 'function' || typeof c.findOne !== 'function') {
      throw new HaltConfigError(
        'HALT_INVALID_MONGODB_COLLECTION',
        "MongoDBStore needs a collection of the official mongodb driver. Fix: new MongoDBStore({ collection: client.db('app').collection('halt_state') }).",
      )
    }
    this.collection = c
    this.prefix = checkPrefix(options.prefix ?? 'halt:', 'MongoDBStore')
    this.createIndexes = options.createIndexes ?? true
    const interval = options.cleanupInterval ?? 0
    if (typeof interval !== 'number' || !(interval >= 0) || !Number.isFinite(interval)) {
      throw new HaltConfigError(
        'HALT_INVALID_CLEANUP_INTERVAL',
        `MongoDBStore: cleanupInterval must be milliseconds >= 0, got ${String(options.cleanupInterval)}. Fix: omit it (0: the TTL index deletes expired documents).`,
      )
    }
    if (interval > 0) this.startCleanup(interval)
  }

  /** Stop the cleanup timer, if any. The client stays open: it belongs to the caller. */
  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }

  private startCleanup(interval: number): void {
    if (this.timer !== undefined) return
    this.timer = setInterval(() => {
      this.cleanupExpired().catch(() => {}) // a server that is down is the failure policy's business
    }, interval)
    ;(this.timer as { unref?: () => void }).unref?.()
  }

  /** The document `_id` of `id` under `ns` (spec/KEYS.md; hashed beyond 1024 bytes). */
  key(ns: string, id: string): string {
    return boundedKey(this.prefix, ns, id)
  }

  /**
   * Delete the documents whose state expired at `now` (default: the latest time this store has seen, less
   * `expiryGraceMs`). MongoDB's TTL monitor does this by itself every 60 s; on a server without TTL indexes (FerretDB
   * v1) the store calls it every `cleanupInterval`. Returns how many were deleted.
   */
  async cleanupExpired(now: number = this.lastNow - this.expiryGraceMs): Promise<number> {
    if (!(now > 0)) return 0
    const r = await this.collection.deleteMany({ e: { $lte: now } })
    return r.deletedCount
  }

  /** Documents held (of a namespace, or under the prefix). */
  size(ns?: string): Promise<number> {
    return this.collection.countDocuments(this.matching(ns))
  }

  protected async read(key: string): Promise<Versioned<number> | null> {
    if (this.ttlIndex === undefined) await this.ready()
    const doc = (await this.collection.findOne({ _id: key }, PROJECTION)) as HaltDocument | null
    return doc === null ? null : { state: doc.s, version: doc.v, expiresAt: doc.e }
  }

  protected async write(key: string, _ns: string, next: Next, prev: Versioned<number> | null): Promise<Written<number>> {
    if (this.ttlIndex === undefined) await this.ready() // a guessed write may come before any read
    const version = newVersion()
    const update = { $set: { s: next.state, v: version, e: next.expiresAt, x: new Date(Date.now() + next.ttlMs) } }
    if (prev !== null) {
      const r = await this.collection.updateOne({ _id: key, v: prev.version }, update)
      return r.matchedCount === 1 ? { ok: true, version } : { ok: false }
    }
    // A new key, or one whose document has expired: upsert. A live document makes the filter miss and the upsert
    // collide with its _id (E11000): another writer came first.
    try {
      await this.collection.updateOne({ _id: key, e: { $lte: next.now } }, update, { upsert: true })
      return { ok: true, version }
    } catch (error) {
      if ((error as { code?: unknown })?.code === 11000) return { ok: false }
      throw error
    }
  }

  protected async remove(key: string): Promise<void> {
    await this.collection.deleteOne({ _id: key })
  }

  protected async removeAll(ns?: string): Promise<void> {
    await this.collection.deleteMany(this.matching(ns))
  }

  /** Every `_id` of `ns` (or under the prefix): an anchored regular expression, which MongoDB answers from the `_id` index. */
  private matching(ns?: string): object {
    const head = ns === undefined ? this.prefix : `${this.prefix}${escapeKeyPart(ns)}:{`
    return { _id: { $regex: `^${head.replace(/[\\^$.*+?()[\]{}|/-]/g, (c) => `\\${c}`)}` } }
  }

  /** The TTL index, once (again after a failure). */
  private ready(): Promise<void> {
    if (!this.createIndexes) return Promise.resolve()
    if (this.setup === undefined) {
      this.setup = this.collection.createIndex({ x: 1 } as never, { name: 'halt_ttl', expireAfterSeconds: 0 } as never).then(
        () => {
          this.ttlIndex = true
        },
        (error) => {
          const e = error as { codeName?: string; message?: string }
          if (e?.codeName === 'NotImplemented' || /not implemented/i.test(String(e?.message))) {
            // No TTL indexes on this server (FerretDB v1): delete expired documents from here instead.
            this.ttlIndex = false
            this.startCleanup(60_000)
            return
          }
          this.setup = undefined
          throw error
        },
      )
    }
    return this.setup
  }
}
